#include "shmkit/redis/redis_counter.h"

#include <random>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/redis/internal/client.h"

namespace shmkit {
namespace {

using redis_internal::Client;
using redis_internal::Element;
using redis_internal::IntegerOf;
using redis_internal::IsError;
using redis_internal::IsInteger;
using redis_internal::IsNil;
using redis_internal::IsString;
using redis_internal::Reply;
using redis_internal::Script;
using redis_internal::StringOf;

constexpr char kMagic[] = "shmkit-counter";

// KEYS[1] meta, KEYS[2] value, KEYS[3] waiters.
const char kCounterLua[] = R"lua(
local meta = KEYS[1]
local v = KEYS[2]
local w = KEYS[3]
local prefix = string.sub(meta, 1, #meta - 4)
local function value()
  local s = redis.call('GET', v)
  if not s then shmkit_raise('GONE', 'the counter was removed') end
  return s
end
-- Pushes a wake-up to every registered waiter.
local function notify()
  local ws = redis.call('ZRANGE', w, 0, -1)
  for i = 1, #ws do
    local n = prefix .. 'n:' .. ws[i]
    redis.call('RPUSH', n, '1')
    redis.call('LTRIM', n, -4, -1)
    redis.call('PEXPIRE', n, 10000)
  end
end
)lua";

std::string WithPrelude(const char* body) {
  return absl::StrCat(redis_internal::kLuaPrelude, kCounterLua, body);
}

// ARGV: magic, initial, mode.
const Script& OpenScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
local t = redis.call('TYPE', meta)['ok']
if t == 'none' then
  if ARGV[3] == 'attach' then shmkit_raise('NOTFOUND', 'no such counter') end
  if redis.call('EXISTS', v) == 1 then
    shmkit_raise('FOREIGN', 'the value key exists without the meta key')
  end
  redis.call('HSET', meta, 'magic', ARGV[1])
  redis.call('SET', v, ARGV[2])
  return 'created'
end
if t ~= 'hash' or redis.call('HGET', meta, 'magic') ~= ARGV[1] then
  shmkit_raise('FOREIGN', 'the meta key is not a shmkit counter')
end
if ARGV[3] == 'create' then shmkit_raise('EXISTS', 'the counter exists') end
value()
return 'opened'
)lua"));
  return *s;
}

// ARGV: delta, lo, hi.
const Script& AddScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
local old = value()
local r = redis.pcall('INCRBY', v, ARGV[1])
if type(r) == 'table' and r.err then
  if string.find(r.err, 'overflow') then
    shmkit_raise('RANGE', 'the result is outside the counter range')
  end
  shmkit_raise('FOREIGN', 'the value is not an integer')
end
local s = redis.call('GET', v)
if shmkit_dcmp(s, ARGV[2]) < 0 or shmkit_dcmp(s, ARGV[3]) > 0 then
  redis.call('SET', v, old)
  shmkit_raise('RANGE', 'the result ' .. s .. ' is outside the counter range')
end
notify()
return s
)lua"));
  return *s;
}

// ARGV: value.
const Script& SetScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
value()
redis.call('SET', v, ARGV[1])
notify()
return 1
)lua"));
  return *s;
}

// ARGV: expected, desired.
const Script& CasScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
if value() ~= ARGV[1] then return 0 end
redis.call('SET', v, ARGV[2])
notify()
return 1
)lua"));
  return *s;
}

const Script& WakeScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
notify()
return 1
)lua"));
  return *s;
}

// Registers waiter ARGV[1] (or refreshes it) and returns the value. Waiters
// that have not refreshed for a minute are gone (their process died).
const Script& RegisterScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
local now = shmkit_now_ms()
redis.call('ZREMRANGEBYSCORE', w, '-inf', string.format('%.0f', now - 60000))
redis.call('ZADD', w, string.format('%.0f', now), ARGV[1])
return value()
)lua"));
  return *s;
}

const Script& UnregisterScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
redis.call('ZREM', w, ARGV[1])
redis.call('DEL', prefix .. 'n:' .. ARGV[1])
return 1
)lua"));
  return *s;
}

const Script& RemoveScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
value()
notify()
redis.call('DEL', meta, v, w)
return 1
)lua"));
  return *s;
}

}  // namespace

struct RedisCounter::Rep {
  std::shared_ptr<Client> client;
  std::string name;
  std::string meta, value, waiters, notify_prefix;
  std::string lo = absl::StrCat(kCounterMin), hi = absl::StrCat(kCounterMax);

  absl::Status Wrap(const absl::Status& st) const {
    return absl::Status(st.code(), absl::StrCat("redis counter \"", name,
                                                "\": ", st.message()));
  }
  absl::StatusOr<Reply> Eval(const Script& script,
                             absl::Span<const absl::string_view> args) const {
    const absl::string_view keys[] = {meta, value, waiters};
    absl::StatusOr<Reply> r = client->Eval(script, keys, args);
    if (!r.ok()) return Wrap(r.status());
    return r;
  }
  absl::StatusOr<int64_t> Number(const Reply& r) const {
    int64_t v = 0;
    if (!IsString(r.get()) || !absl::SimpleAtoi(StringOf(r.get()), &v)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "redis counter \"", name, "\": the value is not an integer"));
    }
    return v;
  }
};

absl::StatusOr<RedisCounter> RedisCounter::Open(
    absl::string_view url, absl::string_view name,
    const RedisCounterOptions& options) {
  SHMKIT_RETURN_IF_ERROR(redis_internal::CheckObjectName("counter", name));
  SHMKIT_RETURN_IF_ERROR(
      CheckCounterRange(options.initial_value, "initial value"));
  auto rep = std::make_unique<Rep>();
  SHMKIT_ASSIGN_OR_RETURN(
      rep->client,
      Client::Create({.url = std::string(url),
                      .connect_timeout = options.connect_timeout,
                      .command_timeout = options.command_timeout}));
  rep->name = std::string(name);
  const std::string prefix = absl::StrCat("shmkit:c:{", name, "}:");
  rep->meta = prefix + "meta";
  rep->value = prefix + "v";
  rep->waiters = prefix + "w";
  rep->notify_prefix = prefix + "n:";
  const std::string initial = absl::StrCat(options.initial_value);
  const absl::string_view mode = redis_internal::OpenModeArg(options.open);
  const absl::string_view args[] = {kMagic, initial, mode};
  SHMKIT_ASSIGN_OR_RETURN(Reply r, rep->Eval(OpenScript(), args));
  (void)r;
  return RedisCounter(std::move(rep));
}

RedisCounter::RedisCounter(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
RedisCounter::RedisCounter(RedisCounter&&) noexcept = default;
RedisCounter& RedisCounter::operator=(RedisCounter&&) noexcept = default;
RedisCounter::~RedisCounter() = default;

absl::StatusOr<int64_t> RedisCounter::Add(int64_t delta) {
  const std::string d = absl::StrCat(delta);
  const absl::string_view args[] = {d, rep_->lo, rep_->hi};
  absl::StatusOr<Reply> r = rep_->Eval(AddScript(), args);
  if (!r.ok()) {
    if (absl::IsOutOfRange(r.status())) {
      return absl::OutOfRangeError(absl::StrCat(
          "adding ", delta, ": the result is outside the counter range [",
          kCounterMin, ", ", kCounterMax, "]"));
    }
    return r.status();
  }
  return rep_->Number(*r);
}

absl::StatusOr<int64_t> RedisCounter::Get() const {
  const absl::string_view args[] = {"GET", rep_->value};
  absl::StatusOr<Reply> r = rep_->client->Command(args);
  if (!r.ok()) return rep_->Wrap(r.status());
  if (IsNil(r->get())) {
    return absl::FailedPreconditionError(
        absl::StrCat("redis counter \"", rep_->name, "\" was removed"));
  }
  if (IsError(r->get())) {
    return rep_->Wrap(redis_internal::ErrorStatus(StringOf(r->get()), "get"));
  }
  return rep_->Number(*r);
}

absl::Status RedisCounter::Set(int64_t value) {
  SHMKIT_RETURN_IF_ERROR(CheckCounterRange(value, "value"));
  const std::string v = absl::StrCat(value);
  const absl::string_view args[] = {v};
  return rep_->Eval(SetScript(), args).status();
}

absl::StatusOr<bool> RedisCounter::CompareAndSet(int64_t expected,
                                                 int64_t desired) {
  SHMKIT_RETURN_IF_ERROR(CheckCounterRange(desired, "desired value"));
  const std::string e = absl::StrCat(expected), d = absl::StrCat(desired);
  const absl::string_view args[] = {e, d};
  SHMKIT_ASSIGN_OR_RETURN(Reply r, rep_->Eval(CasScript(), args));
  return IsInteger(r.get()) && IntegerOf(r.get()) == 1;
}

absl::StatusOr<int64_t> RedisCounter::WaitUntil(
    absl::FunctionRef<bool(int64_t)> pred, absl::Duration timeout) {
  static thread_local std::mt19937_64 gen(std::random_device{}());
  const std::string waiter = absl::StrFormat("%016x", gen());
  const std::string list = rep_->notify_prefix + waiter;
  const absl::Time deadline = absl::Now() + timeout;
  // The waiter's own connection: BLPOP holds it while blocked.
  SHMKIT_ASSIGN_OR_RETURN(Client::Lease lease, rep_->client->Acquire());
  auto unregister = [&] {
    const absl::string_view keys[] = {rep_->meta, rep_->value, rep_->waiters};
    const absl::string_view args[] = {waiter};
    (void)lease->Eval(UnregisterScript(), keys, args);
  };
  while (true) {
    // Register first, then read: a change after the read pushes to our
    // list, so it cannot be missed.
    const absl::string_view keys[] = {rep_->meta, rep_->value, rep_->waiters};
    const absl::string_view args[] = {waiter};
    absl::StatusOr<Reply> r = lease->Eval(RegisterScript(), keys, args);
    if (!r.ok()) return rep_->Wrap(r.status());
    SHMKIT_ASSIGN_OR_RETURN(int64_t v, rep_->Number(*r));
    if (pred(v)) {
      unregister();
      return v;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      unregister();
      return absl::DeadlineExceededError(absl::StrCat(
          "redis counter \"", rep_->name, "\": the condition did not hold "
          "within ", absl::FormatDuration(timeout), " (value ", v, ")"));
    }
    // At most a second per BLPOP: the registration is refreshed, and a
    // waiter whose process dies is pruned within a minute.
    const absl::Duration slice = std::min(left, absl::Seconds(1));
    const std::string secs =
        absl::StrFormat("%.3f", std::max(0.001, absl::ToDoubleSeconds(slice)));
    const absl::string_view blpop[] = {"BLPOP", list, secs};
    absl::StatusOr<Reply> b = lease->Command(blpop, slice);
    if (!b.ok()) return rep_->Wrap(b.status());
    if (IsError(b->get())) {
      return rep_->Wrap(redis_internal::ErrorStatus(StringOf(b->get()), "wait"));
    }
  }
}

absl::Status RedisCounter::Wake() {
  return rep_->Eval(WakeScript(), {}).status();
}

absl::Status RedisCounter::Remove() {
  return rep_->Eval(RemoveScript(), {}).status();
}

}  // namespace shmkit
