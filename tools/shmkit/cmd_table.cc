// shmkit create, get, set, del, dump: a keyed table from the command line.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/key.h"
#include "shmkit/table/schema.h"
#include "shmkit/table/table.h"
#include "tools/shmkit/cli.h"
#include "tools/shmkit/common_flags.h"
#include "tools/shmkit/objects.h"
#include "tools/shmkit/text.h"

ABSL_FLAG(std::string, key, "",
          "System V key of the new table (required): 0x5eed, a decimal "
          "number or ftok:PATH:PROJ.");
ABSL_FLAG(std::vector<std::string>, column, {},
          "A column NAME:TYPE, TYPE one of int8 int16 int32 int64 (or int), "
          "float64 (or float), float32, string:MAX, bytes:MAX.");
ABSL_FLAG(uint64_t, capacity, 0, "Rows the table holds, exactly (required).");
ABSL_FLAG(uint32_t, max_key_bytes, 64, "Longest row key, in bytes.");
ABSL_FLAG(bool, with_ttl, false,
          "Rows may carry an expiry time (set --ttl); 8 bytes per row.");
ABSL_FLAG(std::string, mode, "0600", "Permission bits of the new object.");
ABSL_FLAG(absl::Duration, ttl, absl::ZeroDuration(),
          "The row expires this long after the write (tables created "
          "--with-ttl).");
ABSL_FLAG(bool, if_absent, false,
          "Insert only: fail (exit 1, AlreadyExists) if the key is present.");
ABSL_FLAG(bool, if_present, false,
          "Update only: fail (exit 3, NotFound) if the key is absent.");
ABSL_FLAG(std::string, get_column, "",
          "Print only this column's value (text: the bare value).");
ABSL_FLAG(std::string, format, "csv",
          "dump: csv, or jsonl (one JSON object per row; --json is the "
          "same).");
ABSL_FLAG(uint64_t, limit, 0, "dump: stop after this many rows (0: all).");

namespace shmkit::cli {
namespace {

// ---------------------------------------------------------------------------
// Parsing

// A --column flag: ParseColumnSpec, with the flag named in its error.
absl::StatusOr<ColumnSpec> ParseColumn(absl::string_view text) {
  absl::StatusOr<ColumnSpec> c = ParseColumnSpec(text);
  if (!c.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--column: ", c.status().message()));
  }
  return c;
}

absl::StatusOr<std::string> KeyArg(absl::string_view text) {
  if (absl::GetFlag(FLAGS_escaped)) return Unescape(text, "key");
  return std::string(text);
}

// COLUMN=VALUE text: ParseColumnValue, after --escaped's unescaping of a
// string.
absl::StatusOr<Value> ParseValue(const ColumnSpec& c, absl::string_view text) {
  if (c.type == ColumnType::kString && absl::GetFlag(FLAGS_escaped)) {
    SHMKIT_ASSIGN_OR_RETURN(
        std::string s, Unescape(text, absl::StrCat("column \"", c.name, "\"")));
    return Value(std::move(s));
  }
  return ParseColumnValue(c, text);
}

// ---------------------------------------------------------------------------
// Printing values

std::string FloatText(double v) {
  std::string s = absl::StrFormat("%.15g", v);
  if (std::strtod(s.c_str(), nullptr) != v) s = absl::StrFormat("%.17g", v);
  return s;
}

std::string ValueText(const ColumnSpec& c, const Value& v) {
  if (v.is_int()) return absl::StrCat(v.int_value());
  if (v.is_float()) return FloatText(v.float_value());
  if (c.type == ColumnType::kBytes) return ToHex(v.string_value());
  return EscapeBytes(v.string_value());
}

void ValueJson(const ColumnSpec& c, const Value& v, JsonWriter& json) {
  if (v.is_int()) {
    json.Int(v.int_value());
  } else if (v.is_float()) {
    json.Double(v.float_value());
  } else if (c.type == ColumnType::kBytes) {
    json.Hex(v.string_value());
  } else {
    json.Text(v.string_value());
  }
}

void RowJson(const Row& row, JsonWriter& json) {
  const Schema& schema = row.schema();
  json.BeginObject();
  json.Key("key").Text(row.key());
  json.Key("columns").BeginObject();
  for (int i = 0; i < schema.column_count(); ++i) {
    json.Key(schema.column(i).name);
    absl::StatusOr<Value> v = row.Get(i);
    if (v.ok()) {
      ValueJson(schema.column(i), *v, json);
    } else {
      json.Null();
    }
  }
  json.EndObject();
  if (row.expires_at().has_value()) {
    json.Key("expires_at")
        .String(absl::FormatTime(absl::RFC3339_full, *row.expires_at(),
                                 absl::UTCTimeZone()));
  }
  json.EndObject();
}

// ---------------------------------------------------------------------------
// create

// The schema --column, --max-key-bytes and --with-ttl describe (and the
// --capacity every create needs).
absl::StatusOr<Schema> SchemaFromFlags(const Invocation& inv) {
  const std::vector<std::string> columns = absl::GetFlag(FLAGS_column);
  if (columns.empty()) {
    return absl::InvalidArgumentError("at least one --column is required");
  }
  if (!inv.Given("capacity")) {
    return absl::InvalidArgumentError("--capacity is required");
  }
  Schema::Builder builder;
  for (const std::string& text : columns) {
    SHMKIT_ASSIGN_OR_RETURN(ColumnSpec c, ParseColumn(text));
    builder.Column(std::move(c));
  }
  builder.MaxKeyBytes(absl::GetFlag(FLAGS_max_key_bytes));
  builder.WithTtl(absl::GetFlag(FLAGS_with_ttl));
  return builder.Build();
}

// create --key redis://host:port/db#NAME: a table in a Redis server.
absl::Status CreateRedis(const Invocation& inv, absl::string_view object) {
  SHMKIT_ASSIGN_OR_RETURN(RedisTableRef ref, ParseRedisTableRef(object));
  SHMKIT_ASSIGN_OR_RETURN(Schema schema, SchemaFromFlags(inv));
  SHMKIT_ASSIGN_OR_RETURN(
      Table table,
      OpenRedisTable(ref.url, ref.name, schema,
                     {.capacity = absl::GetFlag(FLAGS_capacity),
                      .open = OpenMode::kCreate}));
  if (absl::GetFlag(FLAGS_json)) {
    JsonWriter json;
    json.BeginObject();
    json.Key("kind").String("redis-table");
    json.Key("name").String(ref.name);
    json.Key("schema").String(schema.DebugString());
    json.Key("capacity").Uint(table.Stats().capacity);
    json.EndObject();
    Print(json.str());
    Print("\n");
  } else {
    Print(absl::StrFormat("created redis table %s: %s; %d rows\n", ref.name,
                          schema.DebugString(), table.Stats().capacity));
  }
  return absl::OkStatus();
}

absl::Status RunCreate(const Invocation& inv) {
  if (!inv.Given("key")) {
    return absl::InvalidArgumentError(
        "--key is required (an anonymous table would vanish when shmkit "
        "exits)");
  }
  const std::string key_text = absl::GetFlag(FLAGS_key);
  if (absl::StartsWith(key_text, "redis://")) return CreateRedis(inv, key_text);
  SHMKIT_ASSIGN_OR_RETURN(IpcKey key, IpcKey::Parse(key_text));
  if (key.is_private()) {
    return absl::InvalidArgumentError(
        "--key: a private key would vanish when shmkit exits");
  }
  SHMKIT_ASSIGN_OR_RETURN(Schema schema, SchemaFromFlags(inv));
  const std::string mode_text = absl::GetFlag(FLAGS_mode);
  char* end = nullptr;
  const unsigned long mode = std::strtoul(mode_text.c_str(), &end, 8);
  if (mode_text.empty() || *end != '\0' || mode > 0777) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--mode \"", mode_text, "\": expected octal permission bits"));
  }
  TableOptions options;
  options.capacity = absl::GetFlag(FLAGS_capacity);
  options.key = key;
  options.mode = static_cast<mode_t>(mode);
  SHMKIT_ASSIGN_OR_RETURN(Table table, Table::Create(schema, options));
  const TableStats s = table.Stats();
  if (absl::GetFlag(FLAGS_json)) {
    JsonWriter json;
    json.BeginObject();
    json.Key("kind").String("table");
    json.Key("key").String(key.ToString());
    json.Key("id").Int(table.segment().id());
    json.Key("schema").String(schema.DebugString());
    json.Key("capacity").Uint(s.capacity);
    json.Key("memory_bytes").Uint(s.memory_bytes);
    json.Key("bytes_per_row").Double(s.bytes_per_row);
    json.EndObject();
    Print(json.str());
    Print("\n");
  } else {
    Print(absl::StrFormat(
        "created table %s (id %d): %s; %d rows, %s (%.1f bytes per row)\n",
        key.ToString(), table.segment().id(), schema.DebugString(), s.capacity,
        HumanBytes(s.memory_bytes), s.bytes_per_row));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// get, set, del

absl::Status RunGet(const Invocation& inv) {
  SHMKIT_ASSIGN_OR_RETURN(Table table, OpenTable(inv.args[0], true));
  SHMKIT_ASSIGN_OR_RETURN(std::string key, KeyArg(inv.args[1]));
  SHMKIT_ASSIGN_OR_RETURN(Row row, table.Get(key));
  const Schema& schema = table.schema();
  const bool as_json = absl::GetFlag(FLAGS_json);
  if (inv.Given("get_column")) {
    SHMKIT_ASSIGN_OR_RETURN(
        int c, schema.ColumnIndex(absl::GetFlag(FLAGS_get_column)));
    SHMKIT_ASSIGN_OR_RETURN(Value v, row.Get(c));
    if (as_json) {
      JsonWriter json;
      ValueJson(schema.column(c), v, json);
      Print(json.str());
    } else {
      Print(ValueText(schema.column(c), v));
    }
    Print("\n");
    return absl::OkStatus();
  }
  if (as_json) {
    JsonWriter json;
    RowJson(row, json);
    Print(json.str());
    Print("\n");
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> lines = {{"key", EscapeBytes(key)}};
  for (int i = 0; i < schema.column_count(); ++i) {
    absl::StatusOr<Value> v = row.Get(i);
    lines.push_back(
        {schema.column(i).name, v.ok() ? ValueText(schema.column(i), *v)
                                       : std::string(v.status().message())});
  }
  if (row.expires_at().has_value()) {
    lines.push_back(
        {"expires", absl::StrCat("in ", absl::FormatDuration(absl::Trunc(
                                            *row.expires_at() - absl::Now(),
                                            absl::Milliseconds(1))))});
  }
  Print(FormatTable(lines, {}));
  return absl::OkStatus();
}

absl::Status RunSet(const Invocation& inv) {
  if (absl::GetFlag(FLAGS_if_absent) && absl::GetFlag(FLAGS_if_present)) {
    return absl::InvalidArgumentError(
        "--if-absent and --if-present exclude each other");
  }
  SHMKIT_ASSIGN_OR_RETURN(Table table, OpenTable(inv.args[0], false));
  SHMKIT_ASSIGN_OR_RETURN(std::string key, KeyArg(inv.args[1]));
  const Schema& schema = table.schema();
  std::vector<FieldValue> fields;
  fields.reserve(inv.args.size());
  for (size_t i = 2; i < inv.args.size(); ++i) {
    const std::string& a = inv.args[i];
    const size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", EscapeBytes(a), "\": expected COLUMN=VALUE"));
    }
    SHMKIT_ASSIGN_OR_RETURN(int c, schema.ColumnIndex(a.substr(0, eq)));
    SHMKIT_ASSIGN_OR_RETURN(
        Value v,
        ParseValue(schema.column(c), absl::string_view(a).substr(eq + 1)));
    fields.push_back({c, std::move(v)});
  }
  SetOptions options;
  if (inv.Given("ttl")) {
    const absl::Duration ttl = absl::GetFlag(FLAGS_ttl);
    if (ttl <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("--ttl must be positive");
    }
    options.ttl = ttl;
  }
  absl::Status st;
  if (absl::GetFlag(FLAGS_if_absent)) {
    st = table.Add(key, fields, options);
  } else if (absl::GetFlag(FLAGS_if_present)) {
    st = table.Update(key, fields, options);
  } else {
    st = table.Set(key, fields, options);
  }
  SHMKIT_RETURN_IF_ERROR(st);
  if (absl::GetFlag(FLAGS_json)) Print("{\"ok\":true}\n");
  return absl::OkStatus();
}

absl::Status RunDel(const Invocation& inv) {
  SHMKIT_ASSIGN_OR_RETURN(Table table, OpenTable(inv.args[0], false));
  SHMKIT_ASSIGN_OR_RETURN(std::string key, KeyArg(inv.args[1]));
  SHMKIT_RETURN_IF_ERROR(table.Del(key));
  if (absl::GetFlag(FLAGS_json)) Print("{\"deleted\":true}\n");
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// dump

absl::Status RunDump(const Invocation& inv) {
  std::string format = absl::GetFlag(FLAGS_format);
  if (absl::GetFlag(FLAGS_json)) {
    if (inv.Given("format") && format != "jsonl") {
      return absl::InvalidArgumentError("--json means --format=jsonl");
    }
    format = "jsonl";
  }
  if (format != "csv" && format != "jsonl") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format \"", format, "\": expected csv or jsonl"));
  }
  SHMKIT_ASSIGN_OR_RETURN(Table table, OpenTable(inv.args[0], true));
  const Schema& schema = table.schema();
  const uint64_t limit = absl::GetFlag(FLAGS_limit);
  if (format == "csv") {
    std::string header = "key";
    for (const ColumnSpec& c : schema.columns()) {
      absl::StrAppend(&header, ",", CsvField(EscapeBytes(c.name)));
    }
    if (schema.ttl()) absl::StrAppend(&header, ",expires_at");
    Print(header);
    Print("\n");
  }
  // Streams page by page: memory stays bounded by one page whatever the
  // table's size.
  constexpr size_t kPageRows = 1024;
  uint64_t cursor = 0, printed = 0;
  const bool redis = absl::StartsWith(inv.args[0], "redis://");
  absl::flat_hash_set<std::string> seen;
  std::string out;
  do {
    SHMKIT_ASSIGN_OR_RETURN(ScanPage page, table.Scan(cursor, kPageRows));
    for (const Row& row : page.rows) {
      if (limit != 0 && printed == limit) break;
      // Redis scan pages may repeat a row (redis_table.h): print it once.
      if (redis && !seen.insert(std::string(row.key())).second) continue;
      if (format == "jsonl") {
        JsonWriter json;
        RowJson(row, json);
        absl::StrAppend(&out, json.str(), "\n");
      } else {
        absl::StrAppend(&out, CsvField(EscapeBytes(row.key())));
        for (int i = 0; i < schema.column_count(); ++i) {
          absl::StatusOr<Value> v = row.Get(i);
          SHMKIT_RETURN_IF_ERROR(v.status());
          absl::StrAppend(&out, ",", CsvField(ValueText(schema.column(i), *v)));
        }
        if (schema.ttl()) {
          absl::StrAppend(
              &out, ",",
              row.expires_at().has_value()
                  ? absl::FormatTime(absl::RFC3339_full, *row.expires_at(),
                                     absl::UTCTimeZone())
                  : "");
        }
        out += "\n";
      }
      ++printed;
    }
    Print(out);
    out.clear();
    cursor = page.next_cursor;
  } while (cursor != 0 && (limit == 0 || printed < limit));
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> TableCommands() {
  std::vector<Command> c;
  c.push_back({.name = "create",
               .args = "",
               .summary = "Create a keyed table from flags.",
               .details =
                   "A --key of the form redis://host:port/db#NAME creates the table in a "
                   "Redis server (the other commands take that form as "
                   "OBJECT too).\n"
                   "Example:\n  shmkit create --key 0x5eed --capacity 100000 "
                   "--column hits:int64 \\\n      --column user:string:32 "
                   "--max-key-bytes 64\nThe table persists until "
                   "`shmkit rm 0x5eed`.",
               .flags = {"key", "column", "capacity", "max_key_bytes",
                         "with_ttl", "mode", "json"},
               .repeatable = {"column"},
               .run = RunCreate});
  c.push_back({.name = "get",
               .args = "OBJECT KEY",
               .summary = "Print one row (or one column with --get-column).",
               .details =
                   "Exit code 3 when the key is absent or expired. Values: "
                   "strings with C escapes\nfor bytes that are not printable "
                   "UTF-8, bytes columns in hex; JSON: strings\nthat are not "
                   "UTF-8 and bytes columns as {\"hex\": \"...\"}.",
               .flags = {"json", "escaped", "get_column"},
               .min_args = 2,
               .max_args = 2,
               .run = RunGet});
  c.push_back(
      {.name = "set",
       .args = "OBJECT KEY [COLUMN=VALUE...]",
       .summary = "Insert or update a row (unnamed columns: zero on insert, "
                  "kept on update).",
       .details = "Values are parsed by the column's type: integers, numbers, "
                  "text (C escapes\nwith --escaped), hex for bytes columns. A "
                  "value that does not fit its column\nis a usage error "
                  "(exit 2) and changes nothing.",
       .flags = {"json", "escaped", "ttl", "if_absent", "if_present"},
       .min_args = 2,
       .max_args = -1,
       .run = RunSet});
  c.push_back({.name = "del",
               .args = "OBJECT KEY",
               .summary = "Delete a row (exit code 3 when absent).",
               .flags = {"json", "escaped"},
               .min_args = 2,
               .max_args = 2,
               .run = RunDel});
  c.push_back(
      {.name = "dump",
       .args = "OBJECT",
       .summary = "Print every row as CSV or JSON lines, streaming.",
       .details = "CSV (RFC 4180): a header line (key, the columns, "
                  "expires_at for TTL tables),\nthen one line per row; keys "
                  "and strings C-escaped where not printable UTF-8,\nbytes "
                  "columns in hex. JSON lines: {\"key\": ..., \"columns\": "
                  "{...}, \"expires_at\": ...}\nper row, with {\"hex\": ...} "
                  "for what is not UTF-8. Rows present for the whole\ndump "
                  "are printed exactly once; rows written meanwhile may or may "
                  "not be.",
       .flags = {"json", "format", "limit"},
       .min_args = 1,
       .max_args = 1,
       .run = RunDump});
  return c;
}

}  // namespace shmkit::cli
