// The "redis:" queue backend (design and promises: redis_queue.h).
#include "shmkit/redis/redis_queue.h"

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/ipc/queue/internal/spec_reader.h"
#include "shmkit/redis/internal/client.h"

namespace shmkit {
namespace {

using redis_internal::ArraySize;
using redis_internal::Client;
using redis_internal::Element;
using redis_internal::IntegerOf;
using redis_internal::IsArray;
using redis_internal::IsError;
using redis_internal::IsInteger;
using redis_internal::IsNil;
using redis_internal::IsString;
using redis_internal::Reply;
using redis_internal::Script;
using redis_internal::StringOf;

constexpr char kMagic[] = "shmkit-queue";
constexpr size_t kDefaultMaxBytes = size_t{1} << 20;
constexpr size_t kMaxMaxBytes = size_t{512} << 20;
constexpr uint64_t kDefaultMaxMessages = 65536;
// Longest a blocking call waits on the server before it re-checks that the
// queue still exists (and looks for dead consumers' messages).
constexpr absl::Duration kSlice = absl::Milliseconds(500);
// Where messages wait for redelivery: too long for their receiver, or taken
// from a dead consumer.
constexpr char kReturned[] = "_returned";

// KEYS[1] meta, KEYS[2] stream, KEYS[3] space list. ARGV[1] instance id.
const char kQueueLua[] = R"lua(
local meta = KEYS[1]
local s = KEYS[2]
local sp = KEYS[3]
local g = 'shmkit'
local function check_id()
  if redis.call('HGET', meta, 'id') ~= ARGV[1] then
    shmkit_raise('GONE', 'the queue was removed')
  end
end
local function ack(id)
  local n = redis.call('XACK', s, g, id)
  redis.call('XDEL', s, id)
  if n > 0 then
    redis.call('RPUSH', sp, '1')
    redis.call('LTRIM', sp, -64, -1)
    redis.call('PEXPIRE', sp, 10000)
  end
end
)lua";

std::string WithPrelude(const char* body) {
  return absl::StrCat(redis_internal::kLuaPrelude, kQueueLua, body);
}

// ARGV: id, magic, max_messages ('0': any), max_bytes ('0': any), mode,
// defaults for max_messages and max_bytes. Returns {state, id, max_messages,
// max_bytes}.
const Script& OpenScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
local t = redis.call('TYPE', meta)['ok']
if t == 'none' then
  if ARGV[5] == 'attach' then shmkit_raise('NOTFOUND', 'no such queue') end
  if redis.call('EXISTS', s) == 1 then
    shmkit_raise('FOREIGN', 'the stream key exists without the meta key')
  end
  local mm = ARGV[3]
  if mm == '0' then mm = ARGV[6] end
  local mb = ARGV[4]
  if mb == '0' then mb = ARGV[7] end
  redis.call('HSET', meta, 'magic', ARGV[2], 'id', ARGV[1],
             'max_messages', mm, 'max_bytes', mb)
  redis.call('XGROUP', 'CREATE', s, g, '0', 'MKSTREAM')
  return {'created', ARGV[1], mm, mb}
end
if t ~= 'hash' then shmkit_raise('FOREIGN', 'the meta key holds a ' .. t) end
local m = redis.call('HMGET', meta, 'magic', 'id', 'max_messages', 'max_bytes')
if m[1] ~= ARGV[2] then shmkit_raise('FOREIGN', 'the meta hash is not a shmkit queue') end
if ARGV[5] == 'create' then shmkit_raise('EXISTS', 'the queue exists') end
if redis.call('TYPE', s)['ok'] ~= 'stream' then
  shmkit_raise('FOREIGN', 'the stream key is not a stream')
end
return {'opened', m[2], m[3], m[4]}
)lua"));
  return *s;
}

// ARGV: id, type, data. Returns 1 (queued) or 0 (full).
const Script& SendScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
check_id()
local cap = tonumber(redis.call('HGET', meta, 'max_messages'))
if redis.call('XLEN', s) >= cap then return 0 end
redis.call('XADD', s, '*', 't', ARGV[2], 'd', ARGV[3])
return 1
)lua"));
  return *s;
}

// ARGV: id, consumer, max_bytes, truncate (1|0), id to acknowledge ('').
// Returns {'msg', id, type, data, truncated} | {'toolong', size} |
// {'empty', last delivered id, consumer, consumer, ...} (the consumers
// other than this one and _returned that hold pending messages).
const Script& ReceiveScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
check_id()
if ARGV[5] ~= '' then ack(ARGV[5]) end
local me = ARGV[2]
local maxb = tonumber(ARGV[3])
local function fit(d)
  if #d <= maxb then return d, 0 end
  if ARGV[4] == '1' then return string.sub(d, 1, maxb), 1 end
  return nil, 0
end
-- 1. Messages waiting for redelivery, oldest first.
while true do
  local p = redis.call('XPENDING', s, g, '-', '+', 1, '_returned')
  if #p == 0 then break end
  local id = p[1][1]
  local e = redis.call('XRANGE', s, id, id)
  if #e == 0 then
    redis.call('XACK', s, g, id)
  else
    local f = e[1][2]
    local d, tr = fit(f[4])
    if not d then return {'toolong', #f[4]} end
    redis.call('XCLAIM', s, g, me, 0, id)
    return {'msg', id, f[2], d, tr}
  end
end
-- 2. A new message.
local r = redis.call('XREADGROUP', 'GROUP', g, me, 'COUNT', 1, 'STREAMS', s, '>')
if r then
  local id = r[1][2][1][1]
  local f = r[1][2][1][2]
  local d, tr = fit(f[4])
  if not d then
    redis.call('XCLAIM', s, g, '_returned', 0, id)
    return {'toolong', #f[4]}
  end
  return {'msg', id, f[2], d, tr}
end
-- 3. Nothing: say where to wait from, and who holds messages.
local last = '0-0'
local groups = redis.call('XINFO', 'GROUPS', s)
for i = 1, #groups do
  local gi = groups[i]
  local name, lid = nil, nil
  for j = 1, #gi, 2 do
    if gi[j] == 'name' then name = gi[j + 1] end
    if gi[j] == 'last-delivered-id' then lid = gi[j + 1] end
  end
  if name == g then last = lid end
end
local out = {'empty', last}
local summary = redis.call('XPENDING', s, g)
if summary[4] then
  for i = 1, #summary[4] do
    local c = summary[4][i][1]
    if c ~= me and c ~= '_returned' then out[#out + 1] = c end
  end
end
return out
)lua"));
  return *s;
}

// ARGV: id, consumers... Moves their pending messages to _returned and
// deletes them from the group. Returns how many messages moved.
const Script& ReclaimScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
check_id()
local moved = 0
for i = 2, #ARGV do
  while true do
    local p = redis.call('XPENDING', s, g, '-', '+', 100, ARGV[i])
    if #p == 0 then break end
    local ids = {}
    for j = 1, #p do ids[#ids + 1] = p[j][1] end
    redis.call('XCLAIM', s, g, '_returned', 0, unpack(ids))
    moved = moved + #ids
  end
  redis.call('XGROUP', 'DELCONSUMER', s, g, ARGV[i])
end
return moved
)lua"));
  return *s;
}

// ARGV: id, message ids to acknowledge...
const Script& AckScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
for i = 2, #ARGV do ack(ARGV[i]) end
return 1
)lua"));
  return *s;
}

const Script& RemoveScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
check_id()
redis.call('DEL', meta, s)
-- Wake blocked senders now (they find the queue gone).
for i = 1, 16 do redis.call('RPUSH', sp, '1') end
redis.call('PEXPIRE', sp, 10000)
return 1
)lua"));
  return *s;
}

// ARGV: id. Returns {stream length, pending}.
const Script& StatsScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
check_id()
local summary = redis.call('XPENDING', s, g)
return {redis.call('XLEN', s), summary[1]}
)lua"));
  return *s;
}

std::string RandomHex() {
  static thread_local std::mt19937_64 gen(std::random_device{}());
  return absl::StrFormat("%016x", gen());
}

std::string ConsumerName(const redis_internal::Connection& c) {
  return absl::StrCat("c", c.client_id(), "@", c.run_id());
}

}  // namespace

absl::Status RegisterRedisQueueScheme() {
  static const absl::Status registered = RegisterQueueScheme(
      {"redis",
       "Redis stream with a consumer group, at-least-once across hosts: "
       "url=redis://host:port/db, name=N | private, max_messages=N, "
       "max_bytes=N, open=auto|create|attach, connect_ms=N, timeout_ms=N"},
      &RedisQueue::FromSpec);
  return registered;
}

absl::StatusOr<std::unique_ptr<Queue>> RedisQueue::FromSpec(
    const QueueSpec& spec) {
  internal::SpecReader r(spec);
  SHMKIT_ASSIGN_OR_RETURN(std::optional<std::string> url, r.String("url"));
  SHMKIT_ASSIGN_OR_RETURN(std::optional<std::string> name, r.String("name"));
  SHMKIT_ASSIGN_OR_RETURN(bool priv, r.Flag("private"));
  SHMKIT_ASSIGN_OR_RETURN(std::optional<uint64_t> max_messages,
                          r.Uint("max_messages", 1, uint64_t{1} << 40));
  SHMKIT_ASSIGN_OR_RETURN(std::optional<uint64_t> max_bytes,
                          r.Uint("max_bytes", 1, kMaxMaxBytes));
  SHMKIT_ASSIGN_OR_RETURN(std::optional<OpenMode> open, r.Open("open"));
  SHMKIT_ASSIGN_OR_RETURN(std::optional<uint64_t> connect_ms,
                          r.Uint("connect_ms", 1, 3'600'000));
  SHMKIT_ASSIGN_OR_RETURN(std::optional<uint64_t> timeout_ms,
                          r.Uint("timeout_ms", 1, 3'600'000));
  SHMKIT_RETURN_IF_ERROR(r.Finish());
  if (name.has_value() == priv) {
    return r.Error("name", "is needed (or the flag \"private\"), not both");
  }
  if (name.has_value()) {
    if (absl::Status st = redis_internal::CheckObjectName("queue", *name);
        !st.ok() || name->find(',') != std::string::npos) {
      return r.Error("name", "must be 1..200 bytes without spaces, control "
                             "characters, braces or commas");
    }
  }
  if (priv && open.has_value() && *open == OpenMode::kAttach) {
    return r.Error("open", "cannot attach a private queue");
  }
  RedisOptions ro;
  if (url.has_value()) ro.url = *url;
  if (connect_ms.has_value()) ro.connect_timeout = absl::Milliseconds(*connect_ms);
  if (timeout_ms.has_value()) ro.command_timeout = absl::Milliseconds(*timeout_ms);
  SHMKIT_ASSIGN_OR_RETURN(std::shared_ptr<Client> client, Client::Create(ro));
  const std::string qname =
      name.has_value() ? *name : absl::StrCat("private-", RandomHex());
  const std::string prefix = absl::StrCat("shmkit:q:{", qname, "}:");
  const std::string meta = prefix + "meta", stream = prefix + "s",
                    space = prefix + "sp";
  const std::string id = absl::StrCat(RandomHex(), RandomHex());
  const std::string mm = absl::StrCat(max_messages.value_or(0));
  const std::string mb = absl::StrCat(max_bytes.value_or(0));
  const std::string dmm = absl::StrCat(kDefaultMaxMessages);
  const std::string dmb = absl::StrCat(kDefaultMaxBytes);
  const OpenMode mode =
      priv ? OpenMode::kCreate : open.value_or(OpenMode::kCreateOrAttach);
  const absl::string_view mode_s = redis_internal::OpenModeArg(mode);
  const absl::string_view keys[] = {meta, stream, space};
  const absl::string_view args[] = {id, kMagic, mm, mb, mode_s, dmm, dmb};
  const std::string where = absl::StrCat("redis queue \"", qname, "\" at ",
                                         client->address().ToString());
  absl::StatusOr<Reply> reply = client->Eval(OpenScript(), keys, args);
  if (!reply.ok()) {
    return absl::Status(reply.status().code(),
                        absl::StrCat(where, ": ", reply.status().message()));
  }
  uint64_t stored_mm = 0, stored_mb = 0;
  if (ArraySize(reply->get()) != 4 ||
      !absl::SimpleAtoi(StringOf(Element(reply->get(), 2)), &stored_mm) ||
      !absl::SimpleAtoi(StringOf(Element(reply->get(), 3)), &stored_mb) ||
      stored_mb > kMaxMaxBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, ": its stored limits cannot be read"));
  }
  if ((max_messages.has_value() && *max_messages != stored_mm) ||
      (max_bytes.has_value() && *max_bytes != stored_mb)) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, " exists with max_messages=", stored_mm,
        ", max_bytes=", stored_mb, ", not what the spec asks"));
  }
  QueueCapabilities caps;
  caps.backend = "redis";
  caps.max_message_bytes = stored_mb;
  caps.typed_receive = false;
  caps.bidirectional = false;
  caps.attachable = true;
  caps.pollable_fd = false;
  caps.shared_channel = true;
  return std::unique_ptr<Queue>(new RedisQueue(
      std::move(caps), std::move(client), qname,
      std::string(StringOf(Element(reply->get(), 1))), stored_mm, priv));
}

RedisQueue::RedisQueue(QueueCapabilities caps, std::shared_ptr<Client> c,
                       std::string name, std::string id,
                       uint64_t max_messages, bool destroy_on_close)
    : Queue(std::move(caps)),
      client_(std::move(c)),
      name_(std::move(name)),
      id_(std::move(id)),
      meta_(absl::StrCat("shmkit:q:{", name_, "}:meta")),
      stream_(absl::StrCat("shmkit:q:{", name_, "}:s")),
      space_(absl::StrCat("shmkit:q:{", name_, "}:sp")),
      max_messages_(max_messages),
      destroy_on_close_(destroy_on_close) {}

RedisQueue::~RedisQueue() { (void)Close(); }

std::string RedisQueue::Describe() const {
  return absl::StrCat("redis queue \"", name_, "\" at ",
                      client_->address().ToString());
}

absl::Status RedisQueue::Wrap(const absl::Status& st) const {
  return absl::Status(st.code(),
                      absl::StrCat(Describe(), ": ", st.message()));
}

std::string RedisQueue::TakeUnacked() {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = unacked_.find(std::this_thread::get_id());
  if (it == unacked_.end()) return "";
  std::string id = std::move(it->second);
  unacked_.erase(it);
  return id;
}

void RedisQueue::PutUnacked(std::string id) {
  std::lock_guard<std::mutex> lock(mu_);
  unacked_[std::this_thread::get_id()] = std::move(id);
}

absl::Status RedisQueue::SendImpl(absl::string_view bytes, int64_t type,
                                  const WaitMode& wait) {
  const std::string t = absl::StrCat(type);
  const absl::string_view keys[] = {meta_, stream_, space_};
  const absl::string_view args[] = {id_, t, bytes};
  while (true) {
    SHMKIT_ASSIGN_OR_RETURN(Client::Lease lease, client_->Acquire());
    absl::StatusOr<Reply> r = lease->Eval(SendScript(), keys, args);
    if (!r.ok()) return Wrap(r.status());
    if (IsInteger(r->get()) && IntegerOf(r->get()) == 1) return absl::OkStatus();
    // Full.
    if (wait.kind() == WaitMode::Kind::kNone) {
      return absl::UnavailableError(absl::StrCat(
          Describe(), ": full (", max_messages_, " messages)"));
    }
    const absl::Duration left = wait.Remaining();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(
          Describe(), ": still full after ",
          absl::FormatDuration(wait.timeout())));
    }
    // Every acknowledgement pushes a token to the space list.
    const absl::Duration slice = std::min(left, kSlice);
    const std::string secs =
        absl::StrFormat("%.3f", std::max(0.001, absl::ToDoubleSeconds(slice)));
    const absl::string_view blpop[] = {"BLPOP", space_, secs};
    absl::StatusOr<Reply> b = lease->Command(blpop, slice);
    if (!b.ok()) return Wrap(b.status());
  }
}

absl::StatusOr<size_t> RedisQueue::ReclaimDead(
    const std::vector<std::string>& consumers) {
  SHMKIT_ASSIGN_OR_RETURN(Client::Lease lease, client_->Acquire());
  // Which of them are still connected to this server?
  std::vector<std::string> ids;
  std::vector<std::string> dead;
  std::vector<std::string> candidates;
  for (const std::string& c : consumers) {
    absl::string_view v = c;
    const size_t at = v.find('@');
    if (!absl::ConsumePrefix(&v, "c") || at == absl::string_view::npos) {
      continue;  // not one of ours: leave it alone
    }
    const absl::string_view run = absl::string_view(c).substr(at + 1);
    const absl::string_view num = absl::string_view(c).substr(1, at - 1);
    if (run != lease->run_id()) {
      dead.push_back(c);  // from before a server restart
    } else {
      ids.push_back(std::string(num));
      candidates.push_back(c);
    }
  }
  if (!ids.empty()) {
    std::vector<absl::string_view> args = {"CLIENT", "LIST", "ID"};
    for (const std::string& id : ids) args.push_back(id);
    absl::StatusOr<Reply> r = lease->Command(args);
    if (!r.ok()) return Wrap(r.status());
    if (IsError(r->get())) {
      return Wrap(redis_internal::ErrorStatus(StringOf(r->get()),
                                              "CLIENT LIST"));
    }
    std::vector<std::string> alive;
    for (absl::string_view line : absl::StrSplit(StringOf(r->get()), '\n')) {
      absl::string_view rest = line;
      if (!absl::ConsumePrefix(&rest, "id=")) continue;
      alive.push_back(std::string(rest.substr(0, rest.find(' '))));
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      if (std::find(alive.begin(), alive.end(), ids[i]) == alive.end()) {
        dead.push_back(candidates[i]);
      }
    }
  }
  if (dead.empty()) return 0;
  std::vector<absl::string_view> args = {id_};
  for (const std::string& d : dead) args.push_back(d);
  const absl::string_view keys[] = {meta_, stream_, space_};
  absl::StatusOr<Reply> r = lease->Eval(ReclaimScript(), keys, args);
  if (!r.ok()) return Wrap(r.status());
  return static_cast<size_t>(IntegerOf(r->get()));
}

absl::Status RedisQueue::ReceiveImpl(Message& out, size_t max_bytes,
                                     TypeFilter filter, Truncation truncation,
                                     const WaitMode& wait) {
  (void)filter;  // Any() only: the base class refuses the others
  const std::string maxb = absl::StrCat(max_bytes);
  const absl::string_view keys[] = {meta_, stream_, space_};
  while (true) {
    SHMKIT_ASSIGN_OR_RETURN(Client::Lease lease, client_->Acquire());
    const std::string consumer = ConsumerName(*lease);
    std::string ack = TakeUnacked();
    const absl::string_view args[] = {
        id_, consumer, maxb, truncation == Truncation::kAllow ? "1" : "0",
        ack};
    absl::StatusOr<Reply> r = lease->Eval(ReceiveScript(), keys, args);
    if (!r.ok()) {
      // Acknowledging twice is harmless: keep it for the next call.
      if (!ack.empty()) PutUnacked(std::move(ack));
      return Wrap(r.status());
    }
    const redisReply* reply = r->get();
    const size_t n = ArraySize(reply);
    const absl::string_view state = n > 0 ? StringOf(Element(reply, 0)) : "";
    if (state == "msg" && n == 5) {
      int64_t type = 0;
      if (!absl::SimpleAtoi(StringOf(Element(reply, 2)), &type)) {
        return Wrap(absl::FailedPreconditionError(
            "a stream entry without a numeric type (not written by shmkit)"));
      }
      out.type = type;
      const absl::string_view data = StringOf(Element(reply, 3));
      out.data.assign(data.data(), data.size());
      out.truncated = IntegerOf(Element(reply, 4)) == 1;
      PutUnacked(std::string(StringOf(Element(reply, 1))));
      return absl::OkStatus();
    }
    if (state == "toolong" && n == 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          Describe(), ": the next message has ", IntegerOf(Element(reply, 1)),
          " bytes, more than max_bytes ", max_bytes, " (it stays queued)"));
    }
    if (state != "empty" || n < 2) {
      return Wrap(absl::InternalError("unexpected reply to receive"));
    }
    if (n > 2) {
      std::vector<std::string> others;
      for (size_t i = 2; i < n; ++i) {
        others.push_back(std::string(StringOf(Element(reply, i))));
      }
      SHMKIT_ASSIGN_OR_RETURN(size_t moved, ReclaimDead(others));
      if (moved > 0) continue;
    }
    if (wait.kind() == WaitMode::Kind::kNone) {
      return absl::UnavailableError(absl::StrCat(Describe(), ": empty"));
    }
    const absl::Duration left = wait.Remaining();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat(Describe(), ": no message within ",
                       absl::FormatDuration(wait.timeout())));
    }
    // Wait for an entry after the group's last delivered one (XREAD does not
    // consume it; the script above does).
    const absl::Duration slice = std::min(left, kSlice);
    const std::string ms =
        absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(slice)));
    const std::string last(StringOf(Element(reply, 1)));
    const absl::string_view xread[] = {"XREAD", "BLOCK", ms, "COUNT", "1",
                                       "STREAMS", stream_, last};
    absl::StatusOr<Reply> b = lease->Command(xread, slice);
    if (!b.ok()) return Wrap(b.status());
  }
}

absl::Status RedisQueue::Ack() {
  std::string id = TakeUnacked();
  if (id.empty()) return absl::OkStatus();
  const absl::string_view keys[] = {meta_, stream_, space_};
  const absl::string_view args[] = {id_, id};
  absl::StatusOr<Reply> r = client_->Eval(AckScript(), keys, args);
  if (!r.ok()) {
    PutUnacked(std::move(id));
    return Wrap(r.status());
  }
  return absl::OkStatus();
}

absl::Status RedisQueue::CloseImpl() {
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [thread, id] : unacked_) ids.push_back(std::move(id));
    unacked_.clear();
  }
  absl::Status st;
  const absl::string_view keys[] = {meta_, stream_, space_};
  if (!ids.empty()) {
    std::vector<absl::string_view> args = {id_};
    for (const std::string& id : ids) args.push_back(id);
    absl::StatusOr<Reply> r = client_->Eval(AckScript(), keys, args);
    if (!r.ok() && !absl::IsFailedPrecondition(r.status())) {
      st = Wrap(r.status());
    }
  }
  if (destroy_on_close_) {
    absl::Status removed = RemoveImpl();
    if (!removed.ok() && !absl::IsFailedPrecondition(removed) && st.ok()) {
      st = removed;
    }
  }
  return st;
}

absl::Status RedisQueue::RemoveImpl() {
  const absl::string_view keys[] = {meta_, stream_, space_};
  const absl::string_view args[] = {id_};
  absl::StatusOr<Reply> r = client_->Eval(RemoveScript(), keys, args);
  if (!r.ok()) return Wrap(r.status());
  return absl::OkStatus();
}

absl::StatusOr<QueueStats> RedisQueue::StatsImpl() const {
  const absl::string_view keys[] = {meta_, stream_, space_};
  const absl::string_view args[] = {id_};
  absl::StatusOr<Reply> r = client_->Eval(StatsScript(), keys, args);
  if (!r.ok()) return Wrap(r.status());
  QueueStats s;
  if (ArraySize(r->get()) == 2) {
    const int64_t len = IntegerOf(Element(r->get(), 0));
    const int64_t pending = IntegerOf(Element(r->get(), 1));
    s.messages = static_cast<uint64_t>(std::max<int64_t>(0, len - pending));
  }
  s.capacity_messages = max_messages_;
  return s;
}

}  // namespace shmkit
