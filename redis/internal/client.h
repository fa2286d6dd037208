// The hiredis layer shared by every Redis-backed object: one connection
// (Connection), a per-handle pool of them (Client), server-side scripts
// (Script), and the mapping from Redis errors to absl::Status.
//
// Reconnect policy (redis_options.h): a connection that fails is dropped and
// the failing call reports Unavailable / DeadlineExceeded without re-sending;
// Client opens a fresh connection on the next call. The one re-send that is
// safe is after a NOSCRIPT reply (the server has not run the script: its
// script cache is empty after a restart), so Eval loads the script and
// sends it again.
//
// Errors our scripts raise start with one of these words, which map to the
// status codes of DESIGN.md section 7:
//   NOTFOUND  -> NotFound            EXISTS  -> AlreadyExists
//   FULL      -> ResourceExhausted   RANGE   -> OutOfRange
//   FOREIGN   -> FailedPrecondition (data under our names that is not ours)
//   GONE      -> FailedPrecondition (the object was removed under us)
//   INVALID   -> InvalidArgument     MISMATCH -> FailedPrecondition
// A server WRONGTYPE error is FOREIGN too; NOAUTH / WRONGPASS are
// PermissionDenied; any other server error is Internal, quoting it.
#ifndef SHMKIT_REDIS_INTERNAL_CLIENT_H_
#define SHMKIT_REDIS_INTERNAL_CLIENT_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/redis/redis_options.h"

struct redisContext;
struct redisReply;

namespace shmkit::redis_internal {

struct ReplyDeleter {
  void operator()(redisReply* r) const;
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// Accessors over a hiredis reply (types from hiredis.h, hidden here).
bool IsError(const redisReply* r);
bool IsNil(const redisReply* r);
bool IsString(const redisReply* r);  // bulk or status string
bool IsInteger(const redisReply* r);
bool IsArray(const redisReply* r);
absl::string_view StringOf(const redisReply* r);
int64_t IntegerOf(const redisReply* r);
size_t ArraySize(const redisReply* r);
const redisReply* Element(const redisReply* r, size_t i);

// The status an error reply stands for (see the table above); `what`
// prefixes the message.
absl::Status ErrorStatus(absl::string_view error, absl::string_view what);

// A server-side Lua script, sent by its SHA-1 (EVALSHA) once the server has
// it. Instances are static and shared by every connection.
class Script {
 public:
  explicit Script(std::string text) : text_(std::move(text)) {}
  const std::string& text() const { return text_; }
  // The SHA-1 the server answered to SCRIPT LOAD (empty until then).
  std::string sha() const;
  void set_sha(absl::string_view sha) const;

 private:
  std::string text_;
  mutable std::mutex mu_;
  mutable std::string sha_;
};

class Connection {
 public:
  // Connects, AUTHs and SELECTs. Unavailable naming the address when the
  // server cannot be reached; PermissionDenied for a refused password.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const RedisAddress& address, const RedisOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends one command and reads its reply. Transport failures are
  // Unavailable, a reply slower than the command timeout (plus `extra`)
  // DeadlineExceeded; after either the connection is broken(). Server error
  // replies come back as replies (IsError), not as statuses.
  absl::StatusOr<Reply> Command(absl::Span<const absl::string_view> args,
                                absl::Duration extra = absl::ZeroDuration());
  // Sends several commands in one write and reads every reply.
  absl::StatusOr<std::vector<Reply>> Pipeline(
      absl::Span<const std::vector<absl::string_view>> commands);
  // EVALSHA (loading the script on NOSCRIPT). Error replies are turned into
  // statuses with ErrorStatus.
  absl::StatusOr<Reply> Eval(const Script& script,
                             absl::Span<const absl::string_view> keys,
                             absl::Span<const absl::string_view> args);

  bool broken() const { return broken_; }
  // CLIENT ID of this connection and the server's run_id (which changes
  // when the server restarts), learned at connect.
  int64_t client_id() const { return client_id_; }
  const std::string& run_id() const { return run_id_; }
  const std::string& address() const { return address_; }

 private:
  Connection() = default;
  absl::Status Send(absl::Span<const absl::string_view> args);
  absl::StatusOr<Reply> Read(absl::Duration timeout);
  absl::Status Fail(absl::string_view what);
  absl::Status Timeout(absl::Duration timeout);

  redisContext* ctx_ = nullptr;
  bool broken_ = false;
  int64_t client_id_ = 0;
  std::string run_id_;
  std::string address_;
  absl::Duration timeout_;
};

// A thread-safe pool of connections to one server, for one handle. After
// fork() the child never touches the parent's connections (it opens its own).
class Client {
 public:
  static absl::StatusOr<std::shared_ptr<Client>> Create(
      const RedisOptions& options);

  // A connection for the duration of a scope; returned to the pool unless
  // it broke.
  class Lease {
   public:
    Lease(Client* client, std::unique_ptr<Connection> conn)
        : client_(client), conn_(std::move(conn)) {}
    Lease(Lease&&) = default;
    ~Lease();
    Connection* operator->() { return conn_.get(); }
    Connection& operator*() { return *conn_; }

   private:
    Client* client_;
    std::unique_ptr<Connection> conn_;
  };
  absl::StatusOr<Lease> Acquire();

  absl::StatusOr<Reply> Command(absl::Span<const absl::string_view> args);
  absl::StatusOr<Reply> Eval(const Script& script,
                             absl::Span<const absl::string_view> keys,
                             absl::Span<const absl::string_view> args);

  const RedisOptions& options() const { return options_; }
  const RedisAddress& address() const { return address_; }

 private:
  Client(RedisOptions options, RedisAddress address)
      : options_(std::move(options)), address_(std::move(address)) {}
  void Release(std::unique_ptr<Connection> conn);

  const RedisOptions options_;
  const RedisAddress address_;
  std::mutex mu_;
  // The fork generation the pooled connections belong to (a child's
  // inherited ones are the parent's).
  uint64_t generation_ = 0;
  std::vector<std::unique_ptr<Connection>> idle_;
};

// InvalidArgument unless `name` (of a table, counter or queue) is 1..200
// bytes without spaces, control characters or braces (a brace would break
// the {name} hash tag).
absl::Status CheckObjectName(absl::string_view kind, absl::string_view name);

// "auto", "create" or "attach", as the open scripts take it.
absl::string_view OpenModeArg(OpenMode mode);

// Lua helpers prepended to every script: error raising with our codes,
// decimal-string comparison (values beyond 2^53 are exact only as text in
// Lua 5.1), and server time in milliseconds.
extern const char kLuaPrelude[];

}  // namespace shmkit::redis_internal

#endif  // SHMKIT_REDIS_INTERNAL_CLIENT_H_
