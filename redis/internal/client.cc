#include "shmkit/redis/internal/client.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/status_macros.h"

namespace shmkit {

std::string RedisAddress::ToString() const {
  return absl::StrCat(host, ":", port, "/", db);
}

namespace {

absl::StatusOr<std::string> PercentDecode(absl::string_view s,
                                          absl::string_view url) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int v = 0;
    if (i + 2 >= s.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis URL \"", url, "\": truncated %-escape"));
    }
    for (int k = 1; k <= 2; ++k) {
      const char c = s[i + k];
      int d = absl::ascii_isdigit(c)                    ? c - '0'
              : (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
                  ? (absl::ascii_tolower(c) - 'a' + 10)
                  : -1;
      if (d < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("redis URL \"", url, "\": bad %-escape"));
      }
      v = v * 16 + d;
    }
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return out;
}

}  // namespace

absl::StatusOr<RedisAddress> ParseRedisUrl(absl::string_view url) {
  // Never quote the password back: messages show the URL without it.
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis URL: ", what,
                     " (expected redis://[[user]:password@]host[:port][/db])"));
  };
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "redis://")) {
    return bad("does not start with redis://");
  }
  RedisAddress a;
  const size_t at = rest.rfind('@');
  if (at != absl::string_view::npos) {
    absl::string_view auth = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = auth.find(':');
    if (colon == absl::string_view::npos) {
      return bad("credentials before '@' need a ':' (user:password or "
                 ":password)");
    }
    SHMKIT_ASSIGN_OR_RETURN(a.user, PercentDecode(auth.substr(0, colon), ""));
    SHMKIT_ASSIGN_OR_RETURN(a.password,
                            PercentDecode(auth.substr(colon + 1), ""));
    a.has_password = true;
  }
  const size_t slash = rest.find('/');
  absl::string_view hostport = rest.substr(0, slash);
  if (slash != absl::string_view::npos) {
    absl::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!absl::SimpleAtoi(db, &a.db) || a.db < 0)) {
      return bad(absl::StrCat("database \"", db, "\" is not a number"));
    }
  }
  const size_t colon = hostport.rfind(':');
  a.host = std::string(hostport.substr(0, colon));
  if (colon != absl::string_view::npos) {
    absl::string_view port = hostport.substr(colon + 1);
    if (!absl::SimpleAtoi(port, &a.port) || a.port < 1 || a.port > 65535) {
      return bad(absl::StrCat("port \"", port, "\" is not 1..65535"));
    }
  }
  if (a.host.empty()) return bad("no host");
  if (a.host.find_first_of("[]") != std::string::npos) {
    return bad("IPv6 literals are not supported");
  }
  return a;
}

namespace redis_internal {

void ReplyDeleter::operator()(redisReply* r) const { freeReplyObject(r); }

bool IsError(const redisReply* r) { return r->type == REDIS_REPLY_ERROR; }
bool IsNil(const redisReply* r) { return r->type == REDIS_REPLY_NIL; }
bool IsString(const redisReply* r) {
  return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}
bool IsInteger(const redisReply* r) { return r->type == REDIS_REPLY_INTEGER; }
bool IsArray(const redisReply* r) { return r->type == REDIS_REPLY_ARRAY; }
absl::string_view StringOf(const redisReply* r) {
  if (r->str == nullptr) return {};
  return absl::string_view(r->str, r->len);
}
int64_t IntegerOf(const redisReply* r) { return r->integer; }
size_t ArraySize(const redisReply* r) {
  return r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
}
const redisReply* Element(const redisReply* r, size_t i) {
  return r->element[i];
}

absl::Status ErrorStatus(absl::string_view error, absl::string_view what) {
  // Redis appends " script: <sha>, on @user_script:<line>." to errors raised
  // inside scripts; the part before it is ours.
  absl::string_view msg = error;
  const size_t script = msg.find(" script: ");
  if (script != absl::string_view::npos) msg = msg.substr(0, script);
  const size_t space = msg.find(' ');
  const absl::string_view code = msg.substr(0, space);
  const absl::string_view text =
      space == absl::string_view::npos ? msg : msg.substr(space + 1);
  const std::string m = absl::StrCat(what, ": ", text);
  if (code == "NOTFOUND") return absl::NotFoundError(m);
  if (code == "EXISTS") return absl::AlreadyExistsError(m);
  if (code == "FULL") return absl::ResourceExhaustedError(m);
  if (code == "RANGE") return absl::OutOfRangeError(m);
  if (code == "INVALID") return absl::InvalidArgumentError(m);
  if (code == "GONE" || code == "MISMATCH") {
    return absl::FailedPreconditionError(m);
  }
  if (code == "FOREIGN") {
    return absl::FailedPreconditionError(
        absl::StrCat(m, " (data under shmkit's names that shmkit did not "
                        "write; nothing was changed)"));
  }
  if (code == "WRONGTYPE") {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": a key under this object's names holds data "
                           "that is not shmkit's (",
                     msg, "); nothing was changed"));
  }
  if (code == "NOAUTH" || code == "WRONGPASS" ||
      absl::StartsWith(msg, "ERR invalid password") ||
      absl::StartsWith(msg, "ERR AUTH")) {
    return absl::PermissionDeniedError(absl::StrCat(what, ": ", msg));
  }
  if (code == "LOADING" || code == "BUSY" || code == "MASTERDOWN" ||
      code == "TRYAGAIN") {
    return absl::UnavailableError(absl::StrCat(what, ": ", msg));
  }
  if (code == "OOM") {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": ", msg));
  }
  return absl::InternalError(absl::StrCat(what, ": redis error: ", msg));
}

std::string Script::sha() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sha_;
}
void Script::set_sha(absl::string_view sha) const {
  std::lock_guard<std::mutex> lock(mu_);
  sha_ = std::string(sha);
}

// ---- Connection ------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
    const RedisAddress& address, const RedisOptions& options) {
  auto conn = std::unique_ptr<Connection>(new Connection());
  conn->address_ = address.ToString();
  conn->timeout_ = options.command_timeout;
  const timeval tv = absl::ToTimeval(options.connect_timeout);
  conn->ctx_ = redisConnectWithTimeout(address.host.c_str(), address.port, tv);
  if (conn->ctx_ == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("redis ", conn->address_, ": out of memory"));
  }
  if (conn->ctx_->err != 0) {
    return absl::UnavailableError(absl::StrCat(
        "redis ", conn->address_, ": cannot connect: ", conn->ctx_->errstr));
  }
  // Writes of a few commands fit the socket buffer; the send timeout only
  // bounds a server that stopped reading.
  redisSetTimeout(conn->ctx_, absl::ToTimeval(options.command_timeout));
  redisEnableKeepAlive(conn->ctx_);

  std::vector<std::vector<absl::string_view>> setup;
  if (address.has_password) {
    if (address.user.empty()) {
      setup.push_back({"AUTH", address.password});
    } else {
      setup.push_back({"AUTH", address.user, address.password});
    }
  }
  const std::string db = absl::StrCat(address.db);
  if (address.db != 0) setup.push_back({"SELECT", db});
  setup.push_back({"CLIENT", "ID"});
  setup.push_back({"INFO", "server"});
  absl::StatusOr<std::vector<Reply>> replies = conn->Pipeline(setup);
  if (!replies.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "redis ", conn->address_, ": connect: ", replies.status().message()));
  }
  for (const Reply& r : *replies) {
    if (IsError(r.get())) {
      return ErrorStatus(StringOf(r.get()),
                         absl::StrCat("redis ", conn->address_, ": connect"));
    }
  }
  conn->client_id_ = IntegerOf((*replies)[replies->size() - 2].get());
  for (absl::string_view line :
       absl::StrSplit(StringOf(replies->back().get()), "\r\n")) {
    if (absl::ConsumePrefix(&line, "run_id:")) conn->run_id_ = std::string(line);
  }
  return conn;
}

Connection::~Connection() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

absl::Status Connection::Fail(absl::string_view what) {
  broken_ = true;
  return absl::UnavailableError(absl::StrCat(
      "redis ", address_, ": ", what, ": ",
      ctx_->errstr[0] != '\0' ? ctx_->errstr : "connection lost",
      " (the connection is dropped; the next call reconnects)"));
}

absl::Status Connection::Timeout(absl::Duration timeout) {
  broken_ = true;
  return absl::DeadlineExceededError(absl::StrCat(
      "redis ", address_, ": no reply within ", absl::FormatDuration(timeout),
      " (the server is slow or stopped; the command may still run; the "
      "connection is dropped)"));
}

absl::Status Connection::Send(absl::Span<const absl::string_view> args) {
  if (broken_) {
    return absl::UnavailableError(
        absl::StrCat("redis ", address_, ": connection broken"));
  }
  std::vector<const char*> argv(args.size());
  std::vector<size_t> lens(args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    argv[i] = args[i].data();
    lens[i] = args[i].size();
  }
  if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), argv.data(),
                             lens.data()) != REDIS_OK) {
    return Fail("send");
  }
  return absl::OkStatus();
}

absl::StatusOr<Reply> Connection::Read(absl::Duration timeout) {
  int done = 0;
  while (!done) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) return Fail("send");
  }
  void* raw = nullptr;
  if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) return Fail("read");
  if (timeout == timeout_) {
    // The common case: the socket's receive timeout (SO_RCVTIMEO, set to
    // the command timeout at connect) bounds each blocking read, so no
    // poll() is needed: one read per reply, as a bare hiredis call does.
    while (raw == nullptr) {
      if (redisBufferRead(ctx_) != REDIS_OK) {
        const int e = errno;
        if (ctx_->err == REDIS_ERR_IO && (e == EAGAIN || e == EWOULDBLOCK)) {
          return Timeout(timeout);
        }
        return Fail("read");
      }
      if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) return Fail("read");
    }
    return Reply(static_cast<redisReply*>(raw));
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (raw == nullptr) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return Timeout(timeout);
    pollfd p{ctx_->fd, POLLIN, 0};
    const int ms = static_cast<int>(
        std::max<int64_t>(1, absl::ToInt64Milliseconds(left + absl::Microseconds(999))));
    const int n = shmkit::internal::NoEventsOnEintr(poll(&p, 1, ms));
    if (n < 0) return Fail("poll");
    if (n == 0) continue;
    if (redisBufferRead(ctx_) != REDIS_OK) return Fail("read");
    if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) return Fail("read");
  }
  return Reply(static_cast<redisReply*>(raw));
}

absl::StatusOr<Reply> Connection::Command(
    absl::Span<const absl::string_view> args, absl::Duration extra) {
  SHMKIT_RETURN_IF_ERROR(Send(args));
  return Read(timeout_ + extra);
}

absl::StatusOr<std::vector<Reply>> Connection::Pipeline(
    absl::Span<const std::vector<absl::string_view>> commands) {
  for (const std::vector<absl::string_view>& c : commands) {
    SHMKIT_RETURN_IF_ERROR(Send(c));
  }
  std::vector<Reply> out;
  out.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    SHMKIT_ASSIGN_OR_RETURN(Reply r, Read(timeout_));
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<Reply> Connection::Eval(const Script& script,
                                       absl::Span<const absl::string_view> keys,
                                       absl::Span<const absl::string_view> args) {
  std::string sha = script.sha();
  const std::string nkeys = absl::StrCat(keys.size());
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (sha.empty()) {
      const absl::string_view load[] = {"SCRIPT", "LOAD", script.text()};
      SHMKIT_ASSIGN_OR_RETURN(Reply r, Command(load));
      if (IsError(r.get())) {
        return absl::InternalError(absl::StrCat(
            "redis ", address_, ": SCRIPT LOAD: ", StringOf(r.get())));
      }
      sha = std::string(StringOf(r.get()));
      script.set_sha(sha);
    }
    std::vector<absl::string_view> argv;
    argv.reserve(3 + keys.size() + args.size());
    argv.push_back("EVALSHA");
    argv.push_back(sha);
    argv.push_back(nkeys);
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    SHMKIT_ASSIGN_OR_RETURN(Reply r, Command(argv));
    if (IsError(r.get()) && absl::StartsWith(StringOf(r.get()), "NOSCRIPT")) {
      // Not run: the server lost its script cache (a restart). Safe to load
      // and send again.
      sha.clear();
      continue;
    }
    if (IsError(r.get())) {
      return ErrorStatus(StringOf(r.get()), absl::StrCat("redis ", address_));
    }
    return r;
  }
  return absl::InternalError(
      absl::StrCat("redis ", address_, ": script keeps missing after LOAD"));
}

// ---- Client ----------------------------------------------------------------

namespace {

// Bumped in every fork child, so a pool notices it was inherited without a
// getpid() system call per command.
std::atomic<uint64_t> fork_generation{0};

uint64_t ForkGeneration() {
  static std::once_flag once;
  std::call_once(once, [] {
    pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1); });
  });
  return fork_generation.load(std::memory_order_relaxed);
}

}  // namespace

absl::StatusOr<std::shared_ptr<Client>> Client::Create(
    const RedisOptions& options) {
  SHMKIT_ASSIGN_OR_RETURN(RedisAddress address, ParseRedisUrl(options.url));
  if (options.connect_timeout <= absl::ZeroDuration() ||
      options.command_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("redis timeouts must be positive");
  }
  auto client =
      std::shared_ptr<Client>(new Client(options, std::move(address)));
  client->generation_ = ForkGeneration();
  // Open one connection now, so a server that is not there is an error at
  // open time (Unavailable naming the address).
  SHMKIT_ASSIGN_OR_RETURN(Lease lease, client->Acquire());
  return client;
}

Client::Lease::~Lease() {
  if (client_ != nullptr && conn_ != nullptr) {
    client_->Release(std::move(conn_));
  }
}

absl::StatusOr<Client::Lease> Client::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t generation = ForkGeneration();
    if (generation != generation_) {
      // A fork child: the pooled sockets are the parent's. Closing our
      // copies leaves the parent's connections open.
      idle_.clear();
      generation_ = generation;
    }
    if (!idle_.empty()) {
      std::unique_ptr<Connection> c = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(c));
    }
  }
  SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<Connection> c,
                          Connection::Open(address_, options_));
  return Lease(this, std::move(c));
}

void Client::Release(std::unique_ptr<Connection> conn) {
  if (conn->broken()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (ForkGeneration() != generation_ || idle_.size() >= 16) return;
  idle_.push_back(std::move(conn));
}

absl::StatusOr<Reply> Client::Command(absl::Span<const absl::string_view> args) {
  SHMKIT_ASSIGN_OR_RETURN(Lease lease, Acquire());
  return lease->Command(args);
}

absl::StatusOr<Reply> Client::Eval(const Script& script,
                                   absl::Span<const absl::string_view> keys,
                                   absl::Span<const absl::string_view> args) {
  SHMKIT_ASSIGN_OR_RETURN(Lease lease, Acquire());
  return lease->Eval(script, keys, args);
}

absl::Status CheckObjectName(absl::string_view kind, absl::string_view name) {
  if (name.empty() || name.size() > 200) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redis ", kind, " name of ", name.size(), " bytes (1..200 allowed)"));
  }
  for (char ch : name) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c == 0x7f || c == '{' || c == '}') {
      return absl::InvalidArgumentError(
          absl::StrCat("redis ", kind, " name \"", absl::CEscape(name),
                       "\" has a space, control character or brace"));
    }
  }
  return absl::OkStatus();
}

absl::string_view OpenModeArg(OpenMode mode) {
  switch (mode) {
    case OpenMode::kCreate:
      return "create";
    case OpenMode::kAttach:
      return "attach";
    case OpenMode::kCreateOrAttach:
      break;
  }
  return "auto";
}

const char kLuaPrelude[] = R"lua(
local function shmkit_raise(code, msg)
  error({err = code .. ' ' .. msg})
end
-- Compares two canonical decimal integers given as strings: -1, 0 or 1.
local function shmkit_dcmp(a, b)
  local na = string.sub(a, 1, 1) == '-'
  local nb = string.sub(b, 1, 1) == '-'
  if na ~= nb then
    if na then return -1 else return 1 end
  end
  local x = a
  local y = b
  if na then x = string.sub(a, 2); y = string.sub(b, 2) end
  local c = 0
  if #x ~= #y then
    if #x < #y then c = -1 else c = 1 end
  elseif x ~= y then
    if x < y then c = -1 else c = 1 end
  end
  if na then c = -c end
  return c
end
local function shmkit_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
)lua";

}  // namespace redis_internal
}  // namespace shmkit
