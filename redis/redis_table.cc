// The Redis table backend. Layout and promises: redis_table.h.
//
// Hot paths and their round trips (one each):
//   Get / GetColumn / Exists   HMGET row cols      (a script on TTL tables,
//                                                   to hide expired rows and
//                                                   return the expiry)
//   Incr                       EVALSHA incr        (ZSCORE, HINCRBY, HGET,
//                                                   width check, undo)
//   Set / Add / Update         EVALSHA write       (presence, capacity)
// Scripts check the table's instance id only on paths that insert or report
// absence, so a removed table is GONE (FailedPrecondition) there and the hot
// paths pay nothing for it.
#include "shmkit/redis/redis_table.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/redis/internal/client.h"
#include "shmkit/table/internal/table_backend.h"

namespace shmkit {
namespace {

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

constexpr char kMagic[] = "shmkit-table";
constexpr char kFormat[] = "1";
constexpr uint64_t kMaxCapacity = (uint64_t{1} << 32) - 2;

// Helpers every table script shares. KEYS[1] is the meta hash, KEYS[2] the
// index; ARGV[1] the instance id.
const char kTableLua[] = R"lua(
local meta = KEYS[1]
local idx = KEYS[2]
local prefix = string.sub(meta, 1, #meta - 4)
local function fmt(n) return string.format('%.0f', n) end
local function check_id()
  local id = redis.call('HGET', meta, 'id')
  if id ~= ARGV[1] then
    shmkit_raise('GONE', 'the table was removed (or replaced) under this handle')
  end
end
local function absent(what)
  check_id()
  shmkit_raise('NOTFOUND', what)
end
-- Whether `key` (row hash `row`) is live. An expired row is reclaimed; a row
-- hash the index does not list is someone else's.
local function present(row, key)
  local score = redis.call('ZSCORE', idx, key)
  if not score then
    if redis.call('EXISTS', row) == 1 then
      shmkit_raise('FOREIGN', 'the row key exists but the table does not list it')
    end
    return false
  end
  if score ~= 'inf' and tonumber(score) <= shmkit_now_ms() then
    redis.call('DEL', row)
    redis.call('ZREM', idx, key)
    redis.call('HINCRBY', meta, 'expired_reclaimed', 1)
    return false
  end
  return true
end
local function reclaim(limit)
  local ks = redis.call('ZRANGEBYSCORE', idx, '-inf', fmt(shmkit_now_ms()),
                        'LIMIT', 0, limit)
  for i = 1, #ks do
    redis.call('DEL', prefix .. 'r:' .. ks[i])
    redis.call('ZREM', idx, ks[i])
  end
  if #ks > 0 then redis.call('HINCRBY', meta, 'expired_reclaimed', #ks) end
  return #ks
end
-- Makes room for one row or raises FULL: exactly `capacity` live rows fit.
local function make_room()
  check_id()
  local cap = tonumber(redis.call('HGET', meta, 'capacity'))
  while redis.call('ZCARD', idx) >= cap do
    if reclaim(100) == 0 then
      redis.call('HINCRBY', meta, 'failed_inserts', 1)
      shmkit_raise('FULL', 'the table is full (' .. cap .. ' rows)')
    end
  end
end
-- Inserts row `key` with the (name, value) pairs in ARGV[from .. from+2n-1]
-- followed by `extra`; ttl in ms (0: never expires).
local function insert(row, key, from, n, extra, ttl)
  make_room()
  local all = {}
  for i = 0, 2 * n - 1 do all[#all + 1] = ARGV[from + i] end
  for i = 1, #extra do all[#all + 1] = extra[i] end
  redis.call('HSET', row, unpack(all))
  local score = 'inf'
  if ttl > 0 then
    score = fmt(shmkit_now_ms() + ttl)
    redis.call('PEXPIREAT', row, score)
  end
  redis.call('ZADD', idx, score, key)
end
local function drop(row, key)
  redis.call('DEL', row)
  redis.call('ZREM', idx, key)
end
-- For Incr: whether the row had to be created (create = '1'), from the
-- defaults at ARGV[from ..] (n pairs); NOTFOUND when absent otherwise.
local function present_or_create(row, key, create, from, n, ttl)
  if present(row, key) then return false end
  if create ~= '1' then absent('the key is not present') end
  insert(row, key, from, n, {}, ttl)
  return true
end
)lua";

std::string WithPrelude(const char* body) {
  return absl::StrCat(redis_internal::kLuaPrelude, kTableLua, body);
}

// KEYS: meta, idx. ARGV: magic, format, schema text ('' to attach), capacity,
// new id, mode (auto|create|attach). Returns {created|opened, schema,
// capacity, id}.
const Script& OpenScript() {
  static const Script* s =
      new Script(absl::StrCat(redis_internal::kLuaPrelude, R"lua(
local meta = KEYS[1]
local idx = KEYS[2]
local t = redis.call('TYPE', meta)['ok']
if t == 'none' then
  if ARGV[6] == 'attach' then shmkit_raise('NOTFOUND', 'no such table') end
  if ARGV[3] == '' then shmkit_raise('NOTFOUND', 'no such table') end
  if redis.call('EXISTS', idx) == 1 then
    shmkit_raise('FOREIGN', 'the index key exists without the meta key')
  end
  redis.call('HSET', meta, 'magic', ARGV[1], 'format', ARGV[2],
             'schema', ARGV[3], 'capacity', ARGV[4], 'id', ARGV[5],
             'failed_inserts', 0, 'expired_reclaimed', 0)
  return {'created', ARGV[3], ARGV[4], ARGV[5]}
end
if t ~= 'hash' then
  shmkit_raise('FOREIGN', 'the meta key holds a ' .. t)
end
local m = redis.call('HMGET', meta, 'magic', 'format', 'schema', 'capacity', 'id')
if m[1] ~= ARGV[1] then
  shmkit_raise('FOREIGN', 'the meta hash is not a shmkit table')
end
if m[2] ~= ARGV[2] then
  shmkit_raise('MISMATCH', 'stored format ' .. tostring(m[2]) ..
               ', this build speaks ' .. ARGV[2])
end
if ARGV[6] == 'create' then shmkit_raise('EXISTS', 'the table exists') end
return {'opened', m[3], m[4], m[5]}
)lua"));
  return *s;
}

// KEYS: meta, idx, row. ARGV: id, mode (set|add|update), key, ttl ms,
// n given, given pairs..., n defaults, default pairs...
const Script& WriteScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
local row = KEYS[3]
local key = ARGV[3]
local ttl = tonumber(ARGV[4])
local ng = tonumber(ARGV[5])
local dstart = 6 + 2 * ng
local nd = tonumber(ARGV[dstart])
if present(row, key) then
  if ARGV[2] == 'add' then shmkit_raise('EXISTS', 'the key is present') end
  if ng > 0 then
    local given = {}
    for i = 0, 2 * ng - 1 do given[#given + 1] = ARGV[6 + i] end
    redis.call('HSET', row, unpack(given))
  end
  if ttl > 0 then
    local at = fmt(shmkit_now_ms() + ttl)
    redis.call('PEXPIREAT', row, at)
    redis.call('ZADD', idx, 'XX', at, key)
  end
  return 0
end
if ARGV[2] == 'update' then absent('the key is not present') end
local given = {}
for i = 0, 2 * ng - 1 do given[#given + 1] = ARGV[6 + i] end
insert(row, key, dstart + 1, nd, given, ttl)
return 1
)lua"));
  return *s;
}

// KEYS: meta, idx, row. ARGV: id, key, column, delta, -delta, lo, hi
// ('' for an int64 column: HINCRBY checks that range itself), create (1|0),
// ttl ms, n defaults, default pairs... (only when creating). Returns the new
// value as an integer, or as text beyond 2^53.
const Script& IncrScript() {
  // The common case first (a present row that never expires, no create):
  // two commands and no helper closures, which every call of a script
  // re-creates. Everything else falls through to the general path.
  static const Script* s =
      new Script(absl::StrCat(R"lua(
if ARGV[8] ~= '1' and redis.call('ZSCORE', KEYS[2], ARGV[2]) == 'inf' then
  local r = redis.pcall('HINCRBY', KEYS[3], ARGV[3], ARGV[4])
  if type(r) == 'number' then
    if ARGV[6] == '' then
      if r > -9007199254740992 and r < 9007199254740992 then return r end
      return redis.call('HGET', KEYS[3], ARGV[3])
    end
    if r >= tonumber(ARGV[6]) and r <= tonumber(ARGV[7]) then return r end
    redis.call('HINCRBY', KEYS[3], ARGV[3], ARGV[5])
    return {err = 'RANGE the result ' .. string.format('%.0f', r) ..
            ' leaves the column range ' .. ARGV[6] .. '..' .. ARGV[7]}
  end
  -- HINCRBY refused (and changed nothing): the general path says why.
end
)lua",
                              redis_internal::kLuaPrelude, kTableLua, R"lua(
local row = KEYS[3]
local key = ARGV[2]
local col = ARGV[3]
local created = false
if ARGV[8] == '1' then
  created = present_or_create(row, key, '1', 11, tonumber(ARGV[10]),
                              tonumber(ARGV[9]))
elseif not present(row, key) then
  absent('the key is not present')
end
local r = redis.pcall('HINCRBY', row, col, ARGV[4])
if type(r) == 'table' and r.err then
  if created then drop(row, key) end
  if string.find(r.err, 'overflow') then
    shmkit_raise('RANGE', 'the result leaves the column range ' .. ARGV[6] ..
                 '..' .. ARGV[7])
  end
  shmkit_raise('FOREIGN', 'column ' .. col .. ' does not hold an integer')
end
-- r is a Lua number (a double): exact within 2^53, which covers every
-- narrow column. An int64 column needs no check beyond HINCRBY's own, but
-- its value is returned as text when a double could round it.
if ARGV[6] == '' then
  if r > -9007199254740992 and r < 9007199254740992 then return r end
  return redis.call('HGET', row, col)
end
if r < tonumber(ARGV[6]) or r > tonumber(ARGV[7]) then
  if created then
    drop(row, key)
  else
    redis.call('HINCRBY', row, col, ARGV[5])
  end
  shmkit_raise('RANGE', 'the result ' .. string.format('%.0f', r) ..
               ' leaves the column range ' .. ARGV[6] .. '..' .. ARGV[7])
end
return r
)lua"));
  return *s;
}

// KEYS: meta, idx, row. ARGV: id, key, column, delta, float32 (1|0),
// create, ttl ms, n defaults, default pairs...
const Script& IncrFloatScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
local row = KEYS[3]
local key = ARGV[2]
local col = ARGV[3]
local created = present_or_create(row, key, ARGV[6], 10, tonumber(ARGV[9]),
                                  tonumber(ARGV[7]))
local cur = tonumber(redis.call('HGET', row, col))
if cur == nil then
  if created then drop(row, key) end
  shmkit_raise('FOREIGN', 'column ' .. col .. ' does not hold a number')
end
local x = cur + tonumber(ARGV[4])
if ARGV[5] == '1' then x = struct.unpack('<f', struct.pack('<f', x)) end
if x ~= x or x == math.huge or x == -math.huge then
  if created then drop(row, key) end
  shmkit_raise('RANGE', 'the result is not finite')
end
local out = string.format('%.17g', x)
redis.call('HSET', row, col, out)
return out
)lua"));
  return *s;
}

// KEYS: meta, idx, row. ARGV: id, key, column, expected, desired.
const Script& CasScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
local row = KEYS[3]
if not present(row, ARGV[2]) then absent('the key is not present') end
local cur = redis.call('HGET', row, ARGV[3])
if cur ~= ARGV[4] then return 0 end
redis.call('HSET', row, ARGV[3], ARGV[5])
return 1
)lua"));
  return *s;
}

// KEYS: meta, idx, row. ARGV: id, key, return row (1|0), columns...
// Returns {score, values} or 1.
const Script& DeleteScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
local row = KEYS[3]
local key = ARGV[2]
if not present(row, key) then absent('the key is not present') end
local out = 1
if ARGV[3] == '1' then
  local cols = {}
  for i = 4, #ARGV do cols[#cols + 1] = ARGV[i] end
  out = {redis.call('ZSCORE', idx, key), redis.call('HMGET', row, unpack(cols))}
end
drop(row, key)
return out
)lua"));
  return *s;
}

// Reads of TTL tables. KEYS: meta, idx, row. ARGV: id, key, columns...
// Returns {score, values} or nil; expired rows read as absent (reads do
// not reclaim: they write nothing).
const Script& ReadScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
local score = redis.call('ZSCORE', idx, ARGV[2])
if not score then return false end
if score ~= 'inf' and tonumber(score) <= shmkit_now_ms() then return false end
local cols = {}
for i = 3, #ARGV do cols[#cols + 1] = ARGV[i] end
return {score, redis.call('HMGET', KEYS[3], unpack(cols))}
)lua"));
  return *s;
}

// KEYS: meta, idx. ARGV: id, cursor, count, columns... Returns {next
// cursor, key, score, values, key, score, values, ...}: the live rows of one
// ZSCAN page.
const Script& ScanScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
local r = redis.call('ZSCAN', idx, ARGV[2], 'COUNT', ARGV[3])
local cols = {}
for i = 4, #ARGV do cols[#cols + 1] = ARGV[i] end
local out = {r[1]}
local items = r[2]
local now = nil
for i = 1, #items, 2 do
  local key = items[i]
  local score = items[i + 1]
  local live = true
  if score ~= 'inf' then
    now = now or shmkit_now_ms()
    live = tonumber(score) > now
  end
  if live then
    local v = redis.call('HMGET', prefix .. 'r:' .. key, unpack(cols))
    if v[1] then
      out[#out + 1] = key
      out[#out + 1] = score
      out[#out + 1] = v
    end
  end
end
return out
)lua"));
  return *s;
}

// KEYS: meta, idx. ARGV: id, what (clear|sweep|remove), batch. Deletes up
// to `batch` rows (all rows, expired rows) and returns {deleted, left}.
// "remove" deletes the meta and index keys once no row is left.
const Script& BatchScript() {
  static const Script* s = new Script(WithPrelude(R"lua(
check_id()
local n = 0
if ARGV[2] == 'sweep' then
  n = reclaim(tonumber(ARGV[3]))
else
  local ks = redis.call('ZRANGE', idx, 0, tonumber(ARGV[3]) - 1)
  for i = 1, #ks do drop(prefix .. 'r:' .. ks[i], ks[i]) end
  n = #ks
end
local left = redis.call('ZCARD', idx)
if ARGV[2] == 'remove' and left == 0 then redis.call('DEL', meta, idx) end
return {n, left}
)lua"));
  return *s;
}

// ---- schema text ---------------------------------------------------------

// "v1;key=64;ttl=0;" then "type/size/namelen:name;" per column.
std::string SchemaText(const Schema& schema) {
  std::string out = absl::StrCat("v1;key=", schema.max_key_bytes(),
                                 ";ttl=", schema.ttl() ? 1 : 0, ";");
  for (const ColumnSpec& c : schema.columns()) {
    absl::StrAppend(&out, static_cast<int>(c.type), "/", c.size, "/",
                    c.name.size(), ":", c.name, ";");
  }
  return out;
}

absl::StatusOr<Schema> ParseSchemaText(absl::string_view text) {
  auto bad = [&] {
    return absl::FailedPreconditionError(absl::StrCat(
        "the stored schema \"", absl::CEscape(text), "\" cannot be read"));
  };
  absl::string_view rest = text;
  auto take_until = [&](char sep, absl::string_view* out) {
    const size_t p = rest.find(sep);
    if (p == absl::string_view::npos) return false;
    *out = rest.substr(0, p);
    rest.remove_prefix(p + 1);
    return true;
  };
  absl::string_view part;
  uint32_t key_bytes = 0;
  int ttl = 0;
  if (!take_until(';', &part) || part != "v1") return bad();
  if (!take_until(';', &part) || !absl::ConsumePrefix(&part, "key=") ||
      !absl::SimpleAtoi(part, &key_bytes)) {
    return bad();
  }
  if (!take_until(';', &part) || !absl::ConsumePrefix(&part, "ttl=") ||
      !absl::SimpleAtoi(part, &ttl)) {
    return bad();
  }
  Schema::Builder b;
  b.MaxKeyBytes(key_bytes).WithTtl(ttl != 0);
  while (!rest.empty()) {
    absl::string_view type, size, len;
    int t = 0;
    uint32_t sz = 0;
    size_t n = 0;
    if (!take_until('/', &type) || !take_until('/', &size) ||
        !take_until(':', &len) || !absl::SimpleAtoi(type, &t) ||
        !absl::SimpleAtoi(size, &sz) || !absl::SimpleAtoi(len, &n) ||
        rest.size() < n + 1 || rest[n] != ';') {
      return bad();
    }
    b.Column({std::string(rest.substr(0, n)), static_cast<ColumnType>(t), sz});
    rest.remove_prefix(n + 1);
  }
  absl::StatusOr<Schema> schema = b.Build();
  if (!schema.ok()) return bad();
  return schema;
}

// ---- values --------------------------------------------------------------

std::string FormatDouble(double d) { return absl::StrFormat("%.17g", d); }

std::string Encode(const ColumnSpec& spec, const Value& v) {
  switch (spec.type) {
    case ColumnType::kInt:
      return absl::StrCat(v.int_value());
    case ColumnType::kFloat:
      return FormatDouble(v.is_float() ? v.float_value()
                                       : static_cast<double>(v.int_value()));
    case ColumnType::kString:
    case ColumnType::kBytes:
      return std::string(v.string_value());
  }
  return "";
}

std::string EscapedKey(absl::string_view key) {
  if (key.size() > 64) {
    return absl::StrCat("\"", absl::CEscape(key.substr(0, 64)), "...\"");
  }
  return absl::StrCat("\"", absl::CEscape(key), "\"");
}

class RedisTableBackend final : public internal::TableBackend {
 public:
  RedisTableBackend(std::shared_ptr<Client> client, std::string name,
                    Schema schema, uint64_t capacity, std::string id)
      : client_(std::move(client)),
        name_(std::move(name)),
        prefix_(absl::StrCat("shmkit:t:{", name_, "}:")),
        meta_(prefix_ + "meta"),
        idx_(prefix_ + "idx"),
        schema_(std::move(schema)),
        capacity_(capacity),
        id_(std::move(id)),
        maker_(schema_) {
    for (const ColumnSpec& c : schema_.columns()) {
      column_names_.push_back(c.name);
      defaults_.push_back(c.is_text()    ? std::string()
                          : c.is_float() ? FormatDouble(0.0)
                                         : std::string("0"));
    }
  }

  const Schema& schema() const override { return schema_; }

  absl::StatusOr<bool> Find(absl::string_view key, Row* row) const override {
    SHMKIT_RETURN_IF_ERROR(CheckKey(key));
    return ReadRow(key, -1, row);
  }

  // Without a TTL a row read is one HMGET, so a batch is one pipelined
  // round trip; with a TTL each read is a script (its expiry check), sent
  // one by one.
  absl::Status FindMany(absl::Span<const absl::string_view> keys,
                        absl::Span<Row> rows,
                        absl::Span<bool> found) const override {
    for (absl::string_view key : keys) SHMKIT_RETURN_IF_ERROR(CheckKey(key));
    if (keys.empty()) return absl::OkStatus();
    if (schema_.ttl()) return TableBackend::FindMany(keys, rows, found);
    std::vector<std::string> row_keys;
    row_keys.reserve(keys.size());
    std::vector<std::vector<absl::string_view>> commands;
    commands.reserve(keys.size());
    for (absl::string_view key : keys) {
      row_keys.push_back(RowKey(key));
      std::vector<absl::string_view> args = {"HMGET", row_keys.back()};
      args.insert(args.end(), column_names_.begin(), column_names_.end());
      commands.push_back(std::move(args));
    }
    SHMKIT_ASSIGN_OR_RETURN(Client::Lease lease, client_->Acquire());
    absl::StatusOr<std::vector<Reply>> replies = lease->Pipeline(commands);
    if (!replies.ok()) return Annotate(replies.status(), keys.front());
    for (size_t i = 0; i < keys.size(); ++i) {
      const redisReply* r = (*replies)[i].get();
      if (IsError(r)) {
        return Annotate(redis_internal::ErrorStatus(StringOf(r), "read"),
                        keys[i]);
      }
      SHMKIT_ASSIGN_OR_RETURN(found[i], DecodeRow(keys[i], nullptr, r, -1,
                                                  &rows[i]));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Value> GetColumn(absl::string_view key,
                                  ColumnRef column) const override {
    SHMKIT_ASSIGN_OR_RETURN(int c, column.Resolve(schema_));
    SHMKIT_RETURN_IF_ERROR(CheckKey(key));
    Row row;
    SHMKIT_ASSIGN_OR_RETURN(bool found, ReadRow(key, c, &row));
    if (!found) return NotFound(key);
    return row.Get(c);
  }

  absl::StatusOr<bool> Exists(absl::string_view key) const override {
    SHMKIT_RETURN_IF_ERROR(CheckKey(key));
    return ReadRow(key, 0, nullptr);
  }

  absl::Status Write(absl::string_view key, absl::Span<const FieldValue> values,
                     internal::BackendWrite mode,
                     const SetOptions& options) override {
    SHMKIT_RETURN_IF_ERROR(CheckKey(key));
    if (options.ttl.has_value()) {
      if (!schema_.ttl()) {
        return absl::InvalidArgumentError(
            "a TTL was given but the table's schema has no TTL "
            "(Schema::Builder::WithTtl)");
      }
      if (*options.ttl <= absl::ZeroDuration()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "TTL must be positive, got ", absl::FormatDuration(*options.ttl)));
      }
    }
    std::vector<bool> given(schema_.column_count(), false);
    std::vector<std::string> encoded;
    encoded.reserve(values.size());
    std::vector<int> columns;
    for (const FieldValue& v : values) {
      SHMKIT_ASSIGN_OR_RETURN(int c, v.column.Resolve(schema_));
      if (given[c]) {
        return absl::InvalidArgumentError(absl::StrCat(
            "column \"", schema_.column(c).name, "\" is given twice"));
      }
      given[c] = true;
      SHMKIT_RETURN_IF_ERROR(CheckValueFits(schema_.column(c), v.value));
      encoded.push_back(Encode(schema_.column(c), v.value));
      columns.push_back(c);
    }
    const std::string row_key = RowKey(key);
    const std::string ttl = TtlArg(options.ttl);
    const std::string ng = absl::StrCat(columns.size());
    std::vector<absl::string_view> args = {
        id_,
        mode == internal::BackendWrite::kAdd      ? "add"
        : mode == internal::BackendWrite::kUpdate ? "update"
                                                  : "set",
        key, ttl, ng};
    for (size_t i = 0; i < columns.size(); ++i) {
      args.push_back(column_names_[columns[i]]);
      args.push_back(encoded[i]);
    }
    int nd = 0;
    for (int c = 0; c < schema_.column_count(); ++c) nd += given[c] ? 0 : 1;
    const std::string nd_text = absl::StrCat(nd);
    args.push_back(nd_text);
    for (int c = 0; c < schema_.column_count(); ++c) {
      if (given[c]) continue;
      args.push_back(column_names_[c]);
      args.push_back(defaults_[c]);
    }
    const absl::string_view keys[] = {meta_, idx_, row_key};
    absl::StatusOr<Reply> r = client_->Eval(WriteScript(), keys, args);
    if (!r.ok()) return Annotate(r.status(), key);
    return absl::OkStatus();
  }

  absl::Status Delete(absl::string_view key, Row* row) override {
    SHMKIT_RETURN_IF_ERROR(CheckKey(key));
    const std::string row_key = RowKey(key);
    std::vector<absl::string_view> args = {id_, key, row ? "1" : "0"};
    if (row != nullptr) {
      for (const std::string& c : column_names_) args.push_back(c);
    }
    const absl::string_view keys[] = {meta_, idx_, row_key};
    absl::StatusOr<Reply> r = client_->Eval(DeleteScript(), keys, args);
    if (!r.ok()) return Annotate(r.status(), key);
    if (row == nullptr) return absl::OkStatus();
    if (!IsArray(r->get()) || redis_internal::ArraySize(r->get()) != 2) {
      return Unexpected("delete", r->get());
    }
    SHMKIT_ASSIGN_OR_RETURN(
        bool found,
        DecodeRow(key, Element(r->get(), 0), Element(r->get(), 1), -1, row));
    if (!found) return Unexpected("delete", r->get());
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> Incr(absl::string_view key, ColumnRef column,
                               int64_t delta,
                               const IncrOptions& options) override {
    SHMKIT_ASSIGN_OR_RETURN(int c, column.Resolve(schema_));
    SHMKIT_RETURN_IF_ERROR(CheckKey(key));
    const ColumnSpec& spec = schema_.column(c);
    if (!spec.is_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat("column \"", spec.name, "\" is ", spec.TypeString(),
                       spec.is_float() ? ": use IncrFloat" : ": not a number"));
    }
    SHMKIT_RETURN_IF_ERROR(CheckIncrOptions(options));
    const int bits = static_cast<int>(spec.size) * 8;
    const int64_t hi = bits == 64 ? std::numeric_limits<int64_t>::max()
                                  : (int64_t{1} << (bits - 1)) - 1;
    const int64_t lo =
        bits == 64 ? std::numeric_limits<int64_t>::min() : -hi - 1;
    // A narrow column's value lies in [lo, hi]: a delta beyond hi - lo either
    // way cannot land in range (and its undo could not be expressed).
    if (bits < 64 && (delta > hi - lo || delta < lo - hi)) {
      return absl::OutOfRangeError(absl::StrCat(
          "table \"", name_, "\" key ", EscapedKey(key), ": adding ", delta,
          " leaves column \"", spec.name, "\" (", lo, "..", hi, ")"));
    }
    const std::string row_key = RowKey(key);
    const std::string d = absl::StrCat(delta);
    // -delta and the bounds, only needed (and -delta only representable)
    // for narrow columns.
    const std::string nd = bits < 64 ? absl::StrCat(-delta) : "";
    const std::string lo_s = bits < 64 ? absl::StrCat(lo) : "";
    const std::string hi_s = bits < 64 ? absl::StrCat(hi) : "";
    const std::string ttl = TtlArg(options.ttl);
    const std::string ndef = absl::StrCat(schema_.column_count());
    std::vector<absl::string_view> args = {
        id_,  key,  column_names_[c],           d,   nd,
        lo_s, hi_s, options.create ? "1" : "0", ttl, ndef};
    // The zero row, sent only when the call may insert it.
    if (options.create) AppendDefaults(args);
    const absl::string_view keys[] = {meta_, idx_, row_key};
    absl::StatusOr<Reply> r = client_->Eval(IncrScript(), keys, args);
    if (!r.ok()) return Annotate(r.status(), key);
    if (IsInteger(r->get())) return IntegerOf(r->get());
    int64_t v = 0;
    if (!IsString(r->get()) || !absl::SimpleAtoi(StringOf(r->get()), &v)) {
      return Unexpected("incr", r->get());
    }
    return v;
  }

  absl::StatusOr<double> IncrFloat(absl::string_view key, ColumnRef column,
                                   double delta,
                                   const IncrOptions& options) override {
    SHMKIT_ASSIGN_OR_RETURN(int c, column.Resolve(schema_));
    SHMKIT_RETURN_IF_ERROR(CheckKey(key));
    const ColumnSpec& spec = schema_.column(c);
    if (!spec.is_float()) {
      return absl::InvalidArgumentError(
          absl::StrCat("column \"", spec.name, "\" is ", spec.TypeString(),
                       spec.is_integer() ? ": use Incr" : ": not a number"));
    }
    if (!std::isfinite(delta)) {
      return absl::InvalidArgumentError(
          absl::StrCat("delta ", delta, " is not finite"));
    }
    SHMKIT_RETURN_IF_ERROR(CheckIncrOptions(options));
    const std::string row_key = RowKey(key);
    const std::string d = FormatDouble(delta);
    const std::string ttl = TtlArg(options.ttl);
    const std::string ndef = absl::StrCat(schema_.column_count());
    std::vector<absl::string_view> args = {id_,
                                           key,
                                           column_names_[c],
                                           d,
                                           spec.size == 4 ? "1" : "0",
                                           options.create ? "1" : "0",
                                           ttl,
                                           ndef};
    AppendDefaults(args);
    const absl::string_view keys[] = {meta_, idx_, row_key};
    absl::StatusOr<Reply> r = client_->Eval(IncrFloatScript(), keys, args);
    if (!r.ok()) return Annotate(r.status(), key);
    double v = 0;
    if (!IsString(r->get()) || !absl::SimpleAtod(StringOf(r->get()), &v)) {
      return Unexpected("incr", r->get());
    }
    return v;
  }

  absl::StatusOr<bool> CompareAndSet(absl::string_view key, ColumnRef column,
                                     const Value& expected,
                                     const Value& desired) override {
    SHMKIT_ASSIGN_OR_RETURN(int c, column.Resolve(schema_));
    SHMKIT_RETURN_IF_ERROR(CheckKey(key));
    const ColumnSpec& spec = schema_.column(c);
    SHMKIT_RETURN_IF_ERROR(CheckValueFits(spec, expected));
    SHMKIT_RETURN_IF_ERROR(CheckValueFits(spec, desired));
    const std::string row_key = RowKey(key);
    const std::string e = Encode(spec, expected), d = Encode(spec, desired);
    const absl::string_view args[] = {id_, key, column_names_[c], e, d};
    const absl::string_view keys[] = {meta_, idx_, row_key};
    absl::StatusOr<Reply> r = client_->Eval(CasScript(), keys, args);
    if (!r.ok()) return Annotate(r.status(), key);
    if (!IsInteger(r->get())) return Unexpected("cas", r->get());
    return IntegerOf(r->get()) == 1;
  }

  absl::Status Clear() override { return Batches("clear").status(); }
  absl::StatusOr<uint64_t> Sweep() override { return Batches("sweep"); }
  absl::Status Remove() override { return Batches("remove").status(); }

  uint64_t Count() const override {
    const absl::string_view args[] = {"ZCARD", idx_};
    absl::StatusOr<Reply> r = client_->Command(args);
    if (!r.ok() || !IsInteger(r->get())) return 0;
    return static_cast<uint64_t>(IntegerOf(r->get()));
  }

  absl::StatusOr<ScanPage> Scan(uint64_t cursor,
                                size_t max_rows) const override {
    if (max_rows == 0) {
      return absl::InvalidArgumentError("Scan needs max_rows >= 1");
    }
    const std::string cur = absl::StrCat(cursor);
    const std::string count = absl::StrCat(max_rows);
    std::vector<absl::string_view> args = {id_, cur, count};
    for (const std::string& c : column_names_) args.push_back(c);
    const absl::string_view keys[] = {meta_, idx_};
    SHMKIT_ASSIGN_OR_RETURN(Reply r, client_->Eval(ScanScript(), keys, args));
    const size_t n = redis_internal::ArraySize(r.get());
    if (n == 0 || (n - 1) % 3 != 0) return Unexpected("scan", r.get());
    ScanPage page;
    if (!absl::SimpleAtoi(StringOf(Element(r.get(), 0)), &page.next_cursor)) {
      return Unexpected("scan", r.get());
    }
    for (size_t i = 1; i + 2 < n; i += 3) {
      Row row;
      const absl::string_view key = StringOf(Element(r.get(), i));
      SHMKIT_ASSIGN_OR_RETURN(bool found,
                              DecodeRow(key, Element(r.get(), i + 1),
                                        Element(r.get(), i + 2), -1, &row));
      if (found) page.rows.push_back(std::move(row));
    }
    return page;
  }

  absl::Status ForEach(absl::FunctionRef<bool(const Row&)> fn) const override {
    absl::flat_hash_set<std::string> seen;
    uint64_t cursor = 0;
    do {
      SHMKIT_ASSIGN_OR_RETURN(ScanPage page, Scan(cursor, 256));
      for (const Row& row : page.rows) {
        if (!seen.insert(std::string(row.key())).second) continue;
        if (!fn(row)) return absl::OkStatus();
      }
      cursor = page.next_cursor;
    } while (cursor != 0);
    return absl::OkStatus();
  }

  TableStats Stats() const override {
    TableStats s;
    s.capacity = capacity_;
    const std::vector<absl::string_view> hm = {"HMGET", meta_, "failed_inserts",
                                               "expired_reclaimed"};
    const std::vector<absl::string_view> zc = {"ZCARD", idx_};
    absl::StatusOr<Client::Lease> lease = client_->Acquire();
    if (!lease.ok()) return s;
    absl::StatusOr<std::vector<Reply>> r =
        (*lease)->Pipeline(std::vector<std::vector<absl::string_view>>{hm, zc});
    if (!r.ok()) return s;
    const redisReply* m = (*r)[0].get();
    if (redis_internal::ArraySize(m) == 2) {
      (void)absl::SimpleAtoi(StringOf(Element(m, 0)), &s.failed_inserts);
      (void)absl::SimpleAtoi(StringOf(Element(m, 1)), &s.expired_reclaimed);
    }
    if (IsInteger((*r)[1].get())) s.live_rows = IntegerOf((*r)[1].get());
    return s;
  }

  absl::Status CheckConsistency() const override {
    // Every listed row decodes (ForEach decodes each one fully).
    absl::Status st;
    SHMKIT_RETURN_IF_ERROR(ForEach([&](const Row&) { return true; }));
    return st;
  }

 private:
  absl::Status CheckKey(absl::string_view key) const {
    if (key.empty()) return absl::InvalidArgumentError("empty key");
    if (key.size() > schema_.max_key_bytes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key of ", key.size(),
                       " bytes is longer than the table's MaxKeyBytes ",
                       schema_.max_key_bytes()));
    }
    return absl::OkStatus();
  }

  absl::Status CheckIncrOptions(const IncrOptions& options) const {
    if (options.ttl.has_value() && (!schema_.ttl() || !options.create ||
                                    *options.ttl <= absl::ZeroDuration())) {
      return absl::InvalidArgumentError(
          "IncrOptions::ttl needs create = true, a positive duration and a "
          "schema WithTtl");
    }
    return absl::OkStatus();
  }

  // The (column, zero value) pairs an Incr that creates its row inserts.
  void AppendDefaults(std::vector<absl::string_view>& args) const {
    for (int i = 0; i < schema_.column_count(); ++i) {
      args.push_back(column_names_[i]);
      args.push_back(defaults_[i]);
    }
  }

  static std::string TtlArg(const std::optional<absl::Duration>& ttl) {
    if (!ttl.has_value()) return "0";
    // Round up: a TTL under a millisecond still expires, never "never".
    return absl::StrCat(std::max<int64_t>(
        1, absl::ToInt64Milliseconds(*ttl + absl::Microseconds(999))));
  }

  std::string RowKey(absl::string_view key) const {
    return absl::StrCat(prefix_, "r:", key);
  }

  absl::Status NotFound(absl::string_view key) const {
    return absl::NotFoundError(
        absl::StrCat("key \"", absl::CEscape(key), "\" not found"));
  }

  // Prefixes a status from the server with the table and key.
  absl::Status Annotate(const absl::Status& st, absl::string_view key) const {
    if (absl::IsNotFound(st)) return NotFound(key);
    return absl::Status(
        st.code(), absl::StrCat("table \"", name_, "\" key ", EscapedKey(key),
                                ": ", st.message()));
  }

  absl::Status Unexpected(absl::string_view what, const redisReply* r) const {
    return absl::InternalError(absl::StrCat(
        "table \"", name_, "\": unexpected reply to ", what,
        IsError(r) ? absl::StrCat(": ", StringOf(r)) : std::string()));
  }

  // Reads `key` into `row` (null: existence only). `column` >= 0 reads that
  // column alone.
  absl::StatusOr<bool> ReadRow(absl::string_view key, int column,
                               Row* row) const {
    const std::string row_key = RowKey(key);
    std::vector<absl::string_view> cols;
    if (column >= 0) {
      cols.push_back(column_names_[column]);
    } else {
      cols.assign(column_names_.begin(), column_names_.end());
    }
    if (!schema_.ttl()) {
      std::vector<absl::string_view> args = {"HMGET", row_key};
      args.insert(args.end(), cols.begin(), cols.end());
      absl::StatusOr<Reply> r = client_->Command(args);
      if (!r.ok()) return Annotate(r.status(), key);
      if (IsError(r->get())) {
        return Annotate(redis_internal::ErrorStatus(StringOf(r->get()), "read"),
                        key);
      }
      return DecodeRow(key, nullptr, r->get(), column, row);
    }
    std::vector<absl::string_view> args = {id_, key};
    args.insert(args.end(), cols.begin(), cols.end());
    const absl::string_view keys[] = {meta_, idx_, row_key};
    absl::StatusOr<Reply> r = client_->Eval(ReadScript(), keys, args);
    if (!r.ok()) return Annotate(r.status(), key);
    if (IsNil(r->get())) return false;
    if (redis_internal::ArraySize(r->get()) != 2) {
      return Unexpected("read", r->get());
    }
    return DecodeRow(key, Element(r->get(), 0), Element(r->get(), 1), column,
                     row);
  }

  // Decodes HMGET `values` (every column, or only `column` when >= 0) into
  // `row`; `score` is the expiry (null or "inf": none). False when every
  // value is nil (no such row).
  absl::StatusOr<bool> DecodeRow(absl::string_view key, const redisReply* score,
                                 const redisReply* values, int column,
                                 Row* row) const {
    const size_t n = redis_internal::ArraySize(values);
    const size_t want = column >= 0 ? 1 : schema_.column_count();
    if (n != want) return Unexpected("read", values);
    size_t nils = 0;
    for (size_t i = 0; i < n; ++i) nils += IsNil(Element(values, i)) ? 1 : 0;
    if (nils == n) return false;
    if (nils != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "table \"", name_, "\" key ", EscapedKey(key),
          ": the row hash lacks columns (data shmkit did not write)"));
    }
    if (row == nullptr) return true;
    std::vector<Value> decoded(schema_.column_count());
    for (size_t i = 0; i < n; ++i) {
      const int c = column >= 0 ? column : static_cast<int>(i);
      const ColumnSpec& spec = schema_.column(c);
      const absl::string_view text = StringOf(Element(values, i));
      bool ok = true;
      switch (spec.type) {
        case ColumnType::kInt: {
          int64_t v = 0;
          ok = absl::SimpleAtoi(text, &v);
          decoded[c] = Value(static_cast<long long>(v));
          break;
        }
        case ColumnType::kFloat: {
          double v = 0;
          ok = absl::SimpleAtod(text, &v);
          decoded[c] = Value(v);
          break;
        }
        case ColumnType::kString:
        case ColumnType::kBytes:
          decoded[c] = Value(text);
          break;
      }
      if (!ok || !CheckValueFits(spec, decoded[c]).ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "table \"", name_, "\" key ", EscapedKey(key), ": column \"",
            spec.name, "\" holds \"", absl::CEscape(text.substr(0, 64)),
            "\", not a ", spec.TypeString(), " (data shmkit did not write)"));
      }
    }
    std::optional<absl::Time> expires;
    if (score != nullptr && IsString(score) && StringOf(score) != "inf") {
      double ms = 0;
      if (absl::SimpleAtod(StringOf(score), &ms)) {
        expires = absl::FromUnixMillis(static_cast<int64_t>(ms));
      }
    }
    maker_.Fill(key, decoded, expires, row);
    return true;
  }

  // Runs the batch script until nothing is left; returns rows deleted.
  absl::StatusOr<uint64_t> Batches(absl::string_view what) {
    uint64_t total = 0;
    const absl::string_view keys[] = {meta_, idx_};
    const absl::string_view args[] = {id_, what, "500"};
    while (true) {
      absl::StatusOr<Reply> r = client_->Eval(BatchScript(), keys, args);
      if (!r.ok()) {
        return absl::Status(r.status().code(),
                            absl::StrCat("table \"", name_, "\": ", what, ": ",
                                         r.status().message()));
      }
      if (redis_internal::ArraySize(r->get()) != 2) {
        return Unexpected(what, r->get());
      }
      const int64_t n = IntegerOf(Element(r->get(), 0));
      const int64_t left = IntegerOf(Element(r->get(), 1));
      total += static_cast<uint64_t>(n);
      if (what == "sweep" ? n < 500 : left == 0) return total;
    }
  }

  std::shared_ptr<Client> client_;
  const std::string name_;
  const std::string prefix_;
  const std::string meta_;
  const std::string idx_;
  const Schema schema_;
  const uint64_t capacity_;
  const std::string id_;
  internal::RowMaker maker_;
  std::vector<std::string> column_names_;
  std::vector<std::string> defaults_;
};

std::string NewInstanceId() {
  std::random_device rd;
  std::mt19937_64 gen((uint64_t{rd()} << 32) ^ rd());
  return absl::StrFormat("%016x%016x", gen(), gen());
}

absl::StatusOr<Table> Open(absl::string_view url, absl::string_view name,
                           const Schema* schema,
                           const RedisTableOptions& options) {
  SHMKIT_RETURN_IF_ERROR(redis_internal::CheckObjectName("table", name));
  if (schema != nullptr && options.open != OpenMode::kAttach &&
      (options.capacity < 1 || options.capacity > kMaxCapacity)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "capacity ", options.capacity, " is outside 1..", kMaxCapacity));
  }
  SHMKIT_ASSIGN_OR_RETURN(
      std::shared_ptr<Client> client,
      Client::Create({.url = std::string(url),
                      .connect_timeout = options.connect_timeout,
                      .command_timeout = options.command_timeout}));
  const std::string prefix = absl::StrCat("shmkit:t:{", name, "}:");
  const std::string meta = prefix + "meta", idx = prefix + "idx";
  const std::string text = schema != nullptr ? SchemaText(*schema) : "";
  const std::string cap = absl::StrCat(options.capacity);
  const std::string id = NewInstanceId();
  const absl::string_view mode = redis_internal::OpenModeArg(options.open);
  const absl::string_view keys[] = {meta, idx};
  const absl::string_view args[] = {kMagic, kFormat, text, cap, id, mode};
  absl::StatusOr<Reply> r = client->Eval(OpenScript(), keys, args);
  const std::string where = absl::StrCat("redis table \"", name, "\" at ",
                                         client->address().ToString());
  if (!r.ok()) {
    return absl::Status(r.status().code(),
                        absl::StrCat(where, ": ", r.status().message()));
  }
  if (redis_internal::ArraySize(r->get()) != 4) {
    return absl::InternalError(absl::StrCat(where, ": unexpected reply"));
  }
  SHMKIT_ASSIGN_OR_RETURN(Schema stored,
                          ParseSchemaText(StringOf(Element(r->get(), 1))));
  uint64_t stored_cap = 0;
  if (!absl::SimpleAtoi(StringOf(Element(r->get(), 2)), &stored_cap)) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, ": the stored capacity cannot be read"));
  }
  if (schema != nullptr && !(stored == *schema)) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " has another schema: ", stored.Diff(*schema),
                     " (stored: ", stored.DebugString(), ")"));
  }
  if (options.capacity != 0 && options.capacity != stored_cap) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, " has capacity ", stored_cap, ", not ", options.capacity));
  }
  return Table::FromBackend(std::make_unique<RedisTableBackend>(
      std::move(client), std::string(name), std::move(stored), stored_cap,
      std::string(StringOf(Element(r->get(), 3)))));
}

}  // namespace

absl::StatusOr<Table> OpenRedisTable(absl::string_view url,
                                     absl::string_view name,
                                     const Schema& schema,
                                     const RedisTableOptions& options) {
  return Open(url, name, &schema, options);
}

absl::StatusOr<Table> AttachRedisTable(absl::string_view url,
                                       absl::string_view name,
                                       const RedisTableOptions& options) {
  RedisTableOptions o = options;
  o.open = OpenMode::kAttach;
  return Open(url, name, nullptr, o);
}

}  // namespace shmkit
