// Shmkit\Table: shmkit::Table with Swoole\Table's method names and argument
// order, so porting is a rename.
//
//   $t = new Shmkit\Table(1024);
//   $t->column('hits', Shmkit\Table::TYPE_INT, 8);
//   $t->column('user', Shmkit\Table::TYPE_STRING, 32);
//   $t->create();            // anonymous: shared with pcntl_fork() children
//   $t->open('sessions');    // or named: first process creates, others attach
//
// Differences from Swoole, all on the side of saying what happened: absence
// reads as false (as in Swoole) but bad input throws (unknown column, key or
// string too long, value out of range, table full, lock timeout, foreign
// segment) instead of a warning and a truncated or dropped write; the size is
// an exact capacity (Swoole rounds it up to a power of two and fits only
// part of it); keys may be up to max_key_bytes (default 64, option).
//
// Lifetime: the C++ Table sits behind a shared_ptr. Named tables are also
// kept in a per-process cache, so a PHP-FPM worker attaches once and every
// later request's open() reuses the mapping after checking (one shmget) that
// the segment it maps is still the one under that key.
#include <sys/ipc.h>
#include <sys/shm.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "shmkit/ipc/object.h"
#include "shmkit/table/table.h"
#include "shmkit_php.h"

namespace shmkit::php {
namespace {

// Swoole\Table's constants (the values match shmkit::ColumnType too).
constexpr zend_long kTypeInt = 1;
constexpr zend_long kTypeFloat = 2;
constexpr zend_long kTypeString = 3;

// Rows fetched per page while iterating.
constexpr size_t kIterPageRows = 64;

zend_class_entry* table_ce = nullptr;
zend_object_handlers table_handlers;

struct NamedTable {
  std::shared_ptr<Table> table;
  int shmid = -1;
};
// Named tables this process has open, by key; kept across PHP-FPM requests.
absl::flat_hash_map<key_t, NamedTable>* named_tables = nullptr;

struct TableState {
  uint64_t size = 0;
  std::vector<ColumnSpec> columns;  // declared, until create()/open()
  std::shared_ptr<Table> table;     // null until create()/open()
  std::optional<IpcKey> key;        // named tables
  std::vector<zend_string*> names;  // column names, for row arrays
  Row row;                          // reused by get()
  std::vector<FieldValue> fields;   // reused by set()
  // Iteration (Iterator methods): the current page and where we are.
  std::vector<Row> page;
  size_t pos = 0;
  uint64_t cursor = 0;
  bool done = true;

  ~TableState() { ReleaseNames(); }
  void ReleaseNames() {
    for (zend_string* s : names) zend_string_release(s);
    names.clear();
  }
};

struct TableObject {
  TableState* state;
  zend_object std;
};

TableState& StateOf(zval* self) { return php::StateOf<TableObject>(self); }

// The open table, or nullptr after throwing FailedPrecondition.
Table* Open(TableState& s) {
  if (s.table == nullptr) {
    ThrowStatus(absl::FailedPreconditionError(
        "the table is not open: call create() or open() first (or it was "
        "destroyed)"));
    return nullptr;
  }
  return s.table.get();
}

// Index of column `name`, or -1 after throwing InvalidArgument naming it.
int ColumnOf(TableState& s, const zend_string* name) {
  for (size_t i = 0; i < s.names.size(); ++i) {
    if (zend_string_equals(s.names[i], name)) return static_cast<int>(i);
  }
  absl::StatusOr<int> c = s.table->schema().ColumnIndex(View(name));
  if (c.ok()) return *c;  // cannot happen: names mirror the schema
  ThrowStatus(c.status());
  return -1;
}

void AfterOpen(TableState& s) {
  s.ReleaseNames();
  for (const ColumnSpec& col : s.table->schema().columns()) {
    s.names.push_back(zend_string_init(col.name.data(), col.name.size(), 0));
  }
  s.page.clear();
  s.done = true;
}

// Column `c` of `row` as a PHP value; false (and an exception) on error.
bool ColumnToZval(const TableState& s, const Row& row, int c, zval* out) {
  const ColumnSpec& col = s.table->schema().column(c);
  if (col.is_integer()) {
    absl::StatusOr<int64_t> x = row.GetInt(c);
    if (!x.ok()) return ThrowStatus(x.status()), false;
    ZVAL_LONG(out, *x);
  } else if (col.is_float()) {
    absl::StatusOr<double> x = row.GetFloat(c);
    if (!x.ok()) return ThrowStatus(x.status()), false;
    ZVAL_DOUBLE(out, *x);
  } else {
    absl::StatusOr<absl::string_view> x = row.GetString(c);
    if (!x.ok()) return ThrowStatus(x.status()), false;
    ZVAL_STRINGL(out, x->data(), x->size());
  }
  return true;
}

// A copy of `row` as [column => value] in `out` (which the caller frees,
// also on error); false (and an exception) on error.
bool RowToArray(const TableState& s, const Row& row, zval* out) {
  const int n = s.table->schema().column_count();
  array_init_size(out, static_cast<uint32_t>(n));
  for (int i = 0; i < n; ++i) {
    zval v;
    if (!ColumnToZval(s, row, i, &v)) return false;
    zend_hash_add_new(Z_ARRVAL_P(out), s.names[i], &v);
  }
  return true;
}

// A PHP value for column `col`: int for int columns, int or float for float
// columns, string for string columns. Anything else is a TypeError (PHP's
// answer to a value of the wrong type); range and length are the table's to
// check (InvalidArgument, nothing written).
bool ZvalToValue(const ColumnSpec& col, zval* zv, Value* out) {
  ZVAL_DEREF(zv);
  switch (Z_TYPE_P(zv)) {
    case IS_LONG:
      if (col.is_integer()) {
        *out = Value(static_cast<long long>(Z_LVAL_P(zv)));
        return true;
      }
      if (col.is_float()) {
        *out = Value(static_cast<double>(Z_LVAL_P(zv)));
        return true;
      }
      break;
    case IS_DOUBLE:
      if (col.is_float()) {
        *out = Value(Z_DVAL_P(zv));
        return true;
      }
      break;
    case IS_STRING:
      if (col.is_text()) {
        *out = Value(View(Z_STR_P(zv)));
        return true;
      }
      break;
    default:
      break;
  }
  zend_type_error("column \"%s\" is %s; got %s", col.name.c_str(),
                  col.TypeString().c_str(), zend_zval_type_name(zv));
  return false;
}

// $row as FieldValues in s.fields; false after throwing.
bool ArrayToFields(TableState& s, HashTable* row) {
  s.fields.clear();
  const Schema& schema = s.table->schema();
  zend_string* name;
  zend_ulong index;
  zval* value;
  ZEND_HASH_FOREACH_KEY_VAL(row, index, name, value) {
    int c;
    if (name == nullptr) {
      // An integer key names no column (Swoole would ignore it silently).
      ThrowStatus(absl::InvalidArgumentError(absl::StrCat(
          "row key ", index, " is not a column name (columns are named)")));
      return false;
    }
    c = ColumnOf(s, name);
    if (c < 0) return false;
    Value v;
    if (!ZvalToValue(schema.column(c), value, &v)) return false;
    s.fields.push_back(FieldValue{ColumnRef(c), std::move(v)});
  }
  ZEND_HASH_FOREACH_END();
  return true;
}

// The ttl argument (null: none) as SetOptions; false after throwing.
bool TtlOption(double ttl, bool ttl_is_null, std::optional<absl::Duration>* out) {
  if (ttl_is_null) {
    out->reset();
    return true;
  }
  absl::StatusOr<absl::Duration> d = SecondsToDuration(ttl, "ttl");
  if (!d.ok()) return ThrowStatus(d.status()), false;
  *out = *d;
  return true;
}

struct OpenOptions {
  bool ttl = false;
  uint32_t max_key_bytes = Schema::kDefaultMaxKeyBytes;
  absl::Duration lock_timeout = absl::Seconds(5);
  mode_t mode = 0600;
};

// create()/open() options: ['ttl' => bool, 'max_key_bytes' => int,
// 'lock_timeout' => float seconds, 'mode' => int (named tables)].
bool ParseOptions(HashTable* options, uint32_t arg, OpenOptions* out) {
  if (options == nullptr) return true;
  zend_string* name;
  zval* value;
  ZEND_HASH_FOREACH_STR_KEY_VAL(options, name, value) {
    ZVAL_DEREF(value);
    if (name == nullptr) {
      zend_argument_value_error(arg, "must have string keys");
      return false;
    }
    if (zend_string_equals_literal(name, "ttl")) {
      if (Z_TYPE_P(value) != IS_TRUE && Z_TYPE_P(value) != IS_FALSE) {
        zend_argument_type_error(arg, "option \"ttl\" must be bool, %s given",
                                 zend_zval_type_name(value));
        return false;
      }
      out->ttl = Z_TYPE_P(value) == IS_TRUE;
    } else if (zend_string_equals_literal(name, "max_key_bytes")) {
      if (Z_TYPE_P(value) != IS_LONG) {
        zend_argument_type_error(arg,
                                 "option \"max_key_bytes\" must be int, %s given",
                                 zend_zval_type_name(value));
        return false;
      }
      if (Z_LVAL_P(value) < 1 || Z_LVAL_P(value) > Schema::kMaxKeyBytes) {
        zend_argument_value_error(arg,
                                  "option \"max_key_bytes\" must be 1..%u, "
                                  ZEND_LONG_FMT " given",
                                  Schema::kMaxKeyBytes, Z_LVAL_P(value));
        return false;
      }
      out->max_key_bytes = static_cast<uint32_t>(Z_LVAL_P(value));
    } else if (zend_string_equals_literal(name, "lock_timeout")) {
      if (Z_TYPE_P(value) != IS_LONG && Z_TYPE_P(value) != IS_DOUBLE) {
        zend_argument_type_error(
            arg, "option \"lock_timeout\" must be int|float, %s given",
            zend_zval_type_name(value));
        return false;
      }
      const double sec = zval_get_double(value);
      if (!(sec > 0) || !std::isfinite(sec)) {
        zend_argument_value_error(
            arg, "option \"lock_timeout\" must be a positive number of seconds");
        return false;
      }
      out->lock_timeout = absl::Seconds(sec);
    } else if (zend_string_equals_literal(name, "mode")) {
      if (Z_TYPE_P(value) != IS_LONG) {
        zend_argument_type_error(arg, "option \"mode\" must be int, %s given",
                                 zend_zval_type_name(value));
        return false;
      }
      if (Z_LVAL_P(value) < 0 || Z_LVAL_P(value) > 0777) {
        zend_argument_value_error(arg, "option \"mode\" must be 0..0777");
        return false;
      }
      out->mode = static_cast<mode_t>(Z_LVAL_P(value));
    } else {
      zend_argument_value_error(
          arg,
          "has an unknown option \"%s\" (known: ttl, max_key_bytes, "
          "lock_timeout, mode)",
          ZSTR_VAL(name));
      return false;
    }
  }
  ZEND_HASH_FOREACH_END();
  return true;
}

absl::StatusOr<Schema> BuildSchema(const TableState& s, const OpenOptions& o) {
  Schema::Builder b;
  for (const ColumnSpec& col : s.columns) b.Column(col);
  b.MaxKeyBytes(o.max_key_bytes).WithTtl(o.ttl);
  return b.Build();
}

TableOptions CreateOptions(const TableState& s, const OpenOptions& o) {
  TableOptions options;
  options.capacity = s.size;
  options.lock_timeout = o.lock_timeout;
  options.mode = o.mode;
  return options;
}

int ShmidOf(IpcKey key) { return shmget(key.value(), 0, 0); }

// A named table's capacity must be what this process declared: a worker
// that asks for 2048 rows must not silently get a table of 1024.
absl::Status CheckCapacity(const Table& table, IpcKey key, uint64_t want) {
  absl::StatusOr<ObjectInfo> info = ReadObjectInfo(table.segment());
  if (!info.ok()) return info.status();
  if (info->capacity != want) {
    return absl::FailedPreconditionError(absl::StrCat(
        "table ", key.ToString(), " has capacity ", info->capacity,
        "; this process asked for ", want));
  }
  return absl::OkStatus();
}

// Creates the named table or attaches it (checking the schema), reusing this
// process's mapping when it still maps the segment under `key`.
absl::StatusOr<std::shared_ptr<Table>> OpenNamed(IpcKey key,
                                                 const Schema& schema,
                                                 const TableOptions& create,
                                                 const OpenOptions& o) {
  if (named_tables == nullptr) {
    named_tables = new absl::flat_hash_map<key_t, NamedTable>();
  }
  auto it = named_tables->find(key.value());
  if (it != named_tables->end()) {
    if (ShmidOf(key) == it->second.shmid) {
      const Schema& have = it->second.table->schema();
      if (!(have == schema)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "table ", key.ToString(), " has another schema: ",
            schema.Diff(have)));
      }
      if (absl::Status st = CheckCapacity(*it->second.table, key,
                                          create.capacity);
          !st.ok()) {
        return st;
      }
      return it->second.table;
    }
    named_tables->erase(it);  // removed meanwhile; a new one may be there
  }
  // Create, or attach if another process was first. A table removed
  // between our create and attach attempts is simply tried again.
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<Table> t = Table::Create(schema, create);
    if (!t.ok() && absl::IsAlreadyExists(t.status())) {
      TableAttachOptions attach;
      attach.expected_mode = o.mode;
      attach.expected_schema = schema;
      attach.lock_timeout = o.lock_timeout;
      t = Table::Attach(key, attach);
      if (!t.ok() && absl::IsNotFound(t.status())) {
        last = t.status();
        continue;
      }
    }
    if (!t.ok()) return t.status();
    if (absl::Status st = CheckCapacity(*t, key, create.capacity); !st.ok()) {
      return st;
    }
    auto shared = std::make_shared<Table>(*std::move(t));
    (*named_tables)[key.value()] =
        NamedTable{shared, shared->segment().id()};
    return shared;
  }
  return last;
}

// ---- methods ---------------------------------------------------------------

PHP_METHOD(ShmkitTable, __construct) {
  zend_long size;
  double conflict_proportion = 0.2;
  ZEND_PARSE_PARAMETERS_START(1, 2)
  Z_PARAM_LONG(size)
  Z_PARAM_OPTIONAL
  Z_PARAM_DOUBLE(conflict_proportion)
  ZEND_PARSE_PARAMETERS_END();
  // conflict_proportion sizes Swoole's overflow pool; shmkit's capacity is
  // exact, so it has no meaning here and is accepted only for porting.
  (void)conflict_proportion;
  if (size < 1) {
    zend_argument_value_error(1, "must be at least 1 (rows), " ZEND_LONG_FMT
                                 " given", size);
    RETURN_THROWS();
  }
  TableState& s = StateOf(ZEND_THIS);
  if (s.table != nullptr) {
    zend_throw_error(nullptr, "Shmkit\\Table is already open");
    RETURN_THROWS();
  }
  s.size = static_cast<uint64_t>(size);
}

PHP_METHOD(ShmkitTable, column) {
  zend_string* name;
  zend_long type;
  zend_long size = 0;
  ZEND_PARSE_PARAMETERS_START(2, 3)
  Z_PARAM_STR(name)
  Z_PARAM_LONG(type)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(size)
  ZEND_PARSE_PARAMETERS_END();
  TableState& s = StateOf(ZEND_THIS);
  if (s.table != nullptr) {
    ThrowStatus(absl::FailedPreconditionError(
        "cannot add a column to a table that is open"));
    RETURN_THROWS();
  }
  if (size < 0 || size > Schema::kMaxStringBytes) {
    zend_argument_value_error(3, "must be 0..%u, " ZEND_LONG_FMT " given",
                              Schema::kMaxStringBytes, size);
    RETURN_THROWS();
  }
  ColumnSpec spec;
  spec.name = std::string(View(name));
  switch (type) {
    case kTypeInt:
      spec.type = ColumnType::kInt;
      spec.size = size == 0 ? 8 : static_cast<uint32_t>(size);
      break;
    case kTypeFloat:
      spec.type = ColumnType::kFloat;
      spec.size = size == 0 ? 8 : static_cast<uint32_t>(size);
      break;
    case kTypeString:
      spec.type = ColumnType::kString;
      spec.size = static_cast<uint32_t>(size);
      break;
    default:
      zend_argument_value_error(
          2, "must be Shmkit\\Table::TYPE_INT, TYPE_FLOAT or TYPE_STRING, "
             ZEND_LONG_FMT " given", type);
      RETURN_THROWS();
  }
  // Check the column alone now (width, size, name), so the error points at
  // this call; duplicates are found by create().
  absl::StatusOr<Schema> one = Schema::Builder().Column(spec).Build();
  if (!one.ok()) {
    ThrowStatus(one.status());
    RETURN_THROWS();
  }
  s.columns.push_back(std::move(spec));
  RETURN_TRUE;
}

// What create() and open() share: the table must not be open yet, the
// options must parse and the declared columns must make a schema. False
// after throwing.
bool PrepareOpen(TableState& s, HashTable* options, uint32_t arg,
                 OpenOptions* o, std::optional<Schema>* schema) {
  if (s.table != nullptr) {
    ThrowStatus(absl::FailedPreconditionError("the table is already open"));
    return false;
  }
  if (!ParseOptions(options, arg, o)) return false;
  absl::StatusOr<Schema> built = BuildSchema(s, *o);
  if (!built.ok()) return ThrowStatus(built.status()), false;
  *schema = *std::move(built);
  return true;
}

PHP_METHOD(ShmkitTable, create) {
  HashTable* options = nullptr;
  ZEND_PARSE_PARAMETERS_START(0, 1)
  Z_PARAM_OPTIONAL
  Z_PARAM_ARRAY_HT(options)
  ZEND_PARSE_PARAMETERS_END();
  TableState& s = StateOf(ZEND_THIS);
  OpenOptions o;
  std::optional<Schema> schema;
  if (!PrepareOpen(s, options, 1, &o, &schema)) RETURN_THROWS();
  absl::StatusOr<Table> t = Table::Create(*schema, CreateOptions(s, o));
  if (!t.ok()) {
    ThrowStatus(t.status());
    RETURN_THROWS();
  }
  s.table = std::make_shared<Table>(*std::move(t));
  s.key.reset();
  AfterOpen(s);
  RETURN_TRUE;
}

PHP_METHOD(ShmkitTable, open) {
  zend_string* name;
  HashTable* options = nullptr;
  ZEND_PARSE_PARAMETERS_START(1, 2)
  Z_PARAM_STR(name)
  Z_PARAM_OPTIONAL
  Z_PARAM_ARRAY_HT(options)
  ZEND_PARSE_PARAMETERS_END();
  TableState& s = StateOf(ZEND_THIS);
  OpenOptions o;
  std::optional<Schema> schema;
  if (!PrepareOpen(s, options, 2, &o, &schema)) RETURN_THROWS();
  absl::StatusOr<IpcKey> key = KeyForName(View(name));
  if (!key.ok()) {
    ThrowStatus(key.status());
    RETURN_THROWS();
  }
  TableOptions create = CreateOptions(s, o);
  create.key = *key;
  absl::StatusOr<std::shared_ptr<Table>> t =
      OpenNamed(*key, *schema, create, o);
  if (!t.ok()) {
    ThrowStatus(t.status());
    RETURN_THROWS();
  }
  s.table = *std::move(t);
  s.key = *key;
  AfterOpen(s);
  RETURN_TRUE;
}

enum class WriteKind { kSet, kAdd, kUpdate };

// set() is true or throws; add() and update() are false when the key is
// present (add) or absent (update), as apcu_add() answers.
void WriteRow(INTERNAL_FUNCTION_PARAMETERS, WriteKind kind) {
  zend_string* key;
  HashTable* row;
  double ttl = 0;
  bool ttl_null = true;
  ZEND_PARSE_PARAMETERS_START(2, 3)
  Z_PARAM_STR(key)
  Z_PARAM_ARRAY_HT(row)
  Z_PARAM_OPTIONAL
  Z_PARAM_DOUBLE_OR_NULL(ttl, ttl_null)
  ZEND_PARSE_PARAMETERS_END();
  TableState& s = StateOf(ZEND_THIS);
  Table* t = Open(s);
  if (t == nullptr || !ArrayToFields(s, row)) RETURN_THROWS();
  SetOptions options;
  if (!TtlOption(ttl, ttl_null, &options.ttl)) RETURN_THROWS();
  absl::Status st;
  switch (kind) {
    case WriteKind::kSet:
      st = t->Set(View(key), s.fields, options);
      break;
    case WriteKind::kAdd:
      st = t->Add(View(key), s.fields, options);
      if (absl::IsAlreadyExists(st)) RETURN_FALSE;
      break;
    case WriteKind::kUpdate:
      st = t->Update(View(key), s.fields, options);
      if (absl::IsNotFound(st)) RETURN_FALSE;
      break;
  }
  if (!st.ok()) {
    ThrowStatus(st);
    RETURN_THROWS();
  }
  RETURN_TRUE;
}

PHP_METHOD(ShmkitTable, set) { WriteRow(INTERNAL_FUNCTION_PARAM_PASSTHRU, WriteKind::kSet); }
PHP_METHOD(ShmkitTable, add) { WriteRow(INTERNAL_FUNCTION_PARAM_PASSTHRU, WriteKind::kAdd); }
PHP_METHOD(ShmkitTable, update) {
  WriteRow(INTERNAL_FUNCTION_PARAM_PASSTHRU, WriteKind::kUpdate);
}

PHP_METHOD(ShmkitTable, get) {
  zend_string* key;
  zend_string* column = nullptr;
  ZEND_PARSE_PARAMETERS_START(1, 2)
  Z_PARAM_STR(key)
  Z_PARAM_OPTIONAL
  Z_PARAM_STR_OR_NULL(column)
  ZEND_PARSE_PARAMETERS_END();
  TableState& s = StateOf(ZEND_THIS);
  Table* t = Open(s);
  if (t == nullptr) RETURN_THROWS();
  int c = -1;
  if (column != nullptr && (c = ColumnOf(s, column)) < 0) RETURN_THROWS();
  absl::StatusOr<bool> found = t->Find(View(key), &s.row);
  if (!found.ok()) {
    ThrowStatus(found.status());
    RETURN_THROWS();
  }
  if (!*found) RETURN_FALSE;
  if (c >= 0) {
    if (!ColumnToZval(s, s.row, c, return_value)) RETURN_THROWS();
    return;
  }
  if (!RowToArray(s, s.row, return_value)) {
    zval_ptr_dtor(return_value);
    ZVAL_UNDEF(return_value);
    RETURN_THROWS();
  }
}

PHP_METHOD(ShmkitTable, exists) {
  zend_string* key;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_STR(key)
  ZEND_PARSE_PARAMETERS_END();
  Table* t = Open(StateOf(ZEND_THIS));
  if (t == nullptr) RETURN_THROWS();
  absl::StatusOr<bool> found = t->Exists(View(key));
  if (!found.ok()) {
    ThrowStatus(found.status());
    RETURN_THROWS();
  }
  RETURN_BOOL(*found);
}

PHP_METHOD(ShmkitTable, del) {
  zend_string* key;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_STR(key)
  ZEND_PARSE_PARAMETERS_END();
  Table* t = Open(StateOf(ZEND_THIS));
  if (t == nullptr) RETURN_THROWS();
  absl::Status st = t->Del(View(key));
  if (st.ok()) RETURN_TRUE;
  if (absl::IsNotFound(st)) RETURN_FALSE;
  ThrowStatus(st);
  RETURN_THROWS();
}

PHP_METHOD(ShmkitTable, getAndDelete) {
  zend_string* key;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_STR(key)
  ZEND_PARSE_PARAMETERS_END();
  TableState& s = StateOf(ZEND_THIS);
  Table* t = Open(s);
  if (t == nullptr) RETURN_THROWS();
  absl::StatusOr<Row> row = t->GetAndDelete(View(key));
  if (!row.ok()) {
    if (absl::IsNotFound(row.status())) RETURN_FALSE;
    ThrowStatus(row.status());
    RETURN_THROWS();
  }
  if (!RowToArray(s, *row, return_value)) {
    zval_ptr_dtor(return_value);
    ZVAL_UNDEF(return_value);
    RETURN_THROWS();
  }
}

// incr()/decr(): Swoole's semantics (an absent row is created with the
// column at +-incrby, the others zero), with an optional TTL for a row this
// call creates. Int columns take an int step and stay within their width
// (OutOfRangeException otherwise, nothing changes); float columns take int
// or float.
void IncrOrDecr(INTERNAL_FUNCTION_PARAMETERS, bool negate) {
  zend_string* key;
  zend_string* column;
  zval* by = nullptr;
  double ttl = 0;
  bool ttl_null = true;
  ZEND_PARSE_PARAMETERS_START(2, 4)
  Z_PARAM_STR(key)
  Z_PARAM_STR(column)
  Z_PARAM_OPTIONAL
  Z_PARAM_NUMBER(by)
  Z_PARAM_DOUBLE_OR_NULL(ttl, ttl_null)
  ZEND_PARSE_PARAMETERS_END();
  TableState& s = StateOf(ZEND_THIS);
  Table* t = Open(s);
  if (t == nullptr) RETURN_THROWS();
  const int c = ColumnOf(s, column);
  if (c < 0) RETURN_THROWS();
  IncrOptions options;
  options.create = true;
  if (!TtlOption(ttl, ttl_null, &options.ttl)) RETURN_THROWS();
  const ColumnSpec& col = t->schema().column(c);
  if (col.is_integer()) {
    zend_long step = 1;
    if (by != nullptr) {
      if (Z_TYPE_P(by) != IS_LONG) {
        zend_argument_type_error(3, "must be int for int column \"%s\", %s "
                                    "given", col.name.c_str(),
                                 zend_zval_type_name(by));
        RETURN_THROWS();
      }
      step = Z_LVAL_P(by);
    }
    absl::StatusOr<int64_t> v = negate ? t->Decr(View(key), c, step, options)
                                       : t->Incr(View(key), c, step, options);
    if (!v.ok()) {
      ThrowStatus(v.status());
      RETURN_THROWS();
    }
    RETURN_LONG(*v);
  }
  if (col.is_float()) {
    double step = by == nullptr ? 1.0 : zval_get_double(by);
    absl::StatusOr<double> v =
        t->IncrFloat(View(key), c, negate ? -step : step, options);
    if (!v.ok()) {
      ThrowStatus(v.status());
      RETURN_THROWS();
    }
    RETURN_DOUBLE(*v);
  }
  ThrowStatus(absl::InvalidArgumentError(absl::StrCat(
      negate ? "decr" : "incr", " needs an int or float column; \"", col.name,
      "\" is ", col.TypeString())));
  RETURN_THROWS();
}

PHP_METHOD(ShmkitTable, incr) { IncrOrDecr(INTERNAL_FUNCTION_PARAM_PASSTHRU, false); }
PHP_METHOD(ShmkitTable, decr) { IncrOrDecr(INTERNAL_FUNCTION_PARAM_PASSTHRU, true); }

PHP_METHOD(ShmkitTable, cas) {
  zend_string* key;
  zend_string* column;
  zval* expected;
  zval* desired;
  ZEND_PARSE_PARAMETERS_START(4, 4)
  Z_PARAM_STR(key)
  Z_PARAM_STR(column)
  Z_PARAM_ZVAL(expected)
  Z_PARAM_ZVAL(desired)
  ZEND_PARSE_PARAMETERS_END();
  TableState& s = StateOf(ZEND_THIS);
  Table* t = Open(s);
  if (t == nullptr) RETURN_THROWS();
  const int c = ColumnOf(s, column);
  if (c < 0) RETURN_THROWS();
  const ColumnSpec& col = t->schema().column(c);
  Value want;
  Value put;
  if (!ZvalToValue(col, expected, &want) || !ZvalToValue(col, desired, &put)) {
    RETURN_THROWS();
  }
  absl::StatusOr<bool> done = t->CompareAndSet(View(key), c, want, put);
  if (!done.ok()) {
    if (absl::IsNotFound(done.status())) RETURN_FALSE;
    ThrowStatus(done.status());
    RETURN_THROWS();
  }
  RETURN_BOOL(*done);
}

PHP_METHOD(ShmkitTable, count) {
  ZEND_PARSE_PARAMETERS_NONE();
  Table* t = Open(StateOf(ZEND_THIS));
  if (t == nullptr) RETURN_THROWS();
  RETURN_LONG(static_cast<zend_long>(t->Count()));
}

PHP_METHOD(ShmkitTable, clear) {
  ZEND_PARSE_PARAMETERS_NONE();
  Table* t = Open(StateOf(ZEND_THIS));
  if (t == nullptr) RETURN_THROWS();
  absl::Status st = t->Clear();
  if (!st.ok()) {
    ThrowStatus(st);
    RETURN_THROWS();
  }
  RETURN_TRUE;
}

PHP_METHOD(ShmkitTable, sweep) {
  ZEND_PARSE_PARAMETERS_NONE();
  Table* t = Open(StateOf(ZEND_THIS));
  if (t == nullptr) RETURN_THROWS();
  absl::StatusOr<uint64_t> n = t->Sweep();
  if (!n.ok()) {
    ThrowStatus(n.status());
    RETURN_THROWS();
  }
  RETURN_LONG(static_cast<zend_long>(*n));
}

PHP_METHOD(ShmkitTable, getMemorySize) {
  ZEND_PARSE_PARAMETERS_NONE();
  TableState& s = StateOf(ZEND_THIS);
  if (s.table != nullptr) {
    RETURN_LONG(static_cast<zend_long>(s.table->Stats().memory_bytes));
  }
  // Before create(): what create() would allocate (as Swoole answers).
  absl::StatusOr<Schema> schema = BuildSchema(s, OpenOptions());
  if (!schema.ok()) {
    ThrowStatus(schema.status());
    RETURN_THROWS();
  }
  absl::StatusOr<TablePlan> plan =
      Table::Plan(*schema, CreateOptions(s, OpenOptions()));
  if (!plan.ok()) {
    ThrowStatus(plan.status());
    RETURN_THROWS();
  }
  RETURN_LONG(static_cast<zend_long>(plan->total_bytes));
}

PHP_METHOD(ShmkitTable, stats) {
  ZEND_PARSE_PARAMETERS_NONE();
  Table* t = Open(StateOf(ZEND_THIS));
  if (t == nullptr) RETURN_THROWS();
  const TableStats st = t->Stats();
  array_init(return_value);
  auto put = [&](const char* name, uint64_t v) {
    add_assoc_long(return_value, name, static_cast<zend_long>(v));
  };
  put("capacity", st.capacity);
  put("num", st.live_rows);  // Swoole's name for the row count
  put("memory_bytes", st.memory_bytes);
  add_assoc_double(return_value, "bytes_per_row", st.bytes_per_row);
  put("buckets", st.buckets);
  put("longest_chain", st.longest_chain);
  put("failed_inserts", st.failed_inserts);
  put("lock_waits", st.lock_waits);
  put("recoveries", st.recoveries);
  put("expired_reclaimed", st.expired_reclaimed);
  put("chain_repairs", st.chain_repairs);
  put("read_fallbacks", st.read_fallbacks);
  if (const TableState& s = StateOf(ZEND_THIS); s.key.has_value()) {
    put("key", static_cast<uint32_t>(s.key->value()));
  }
  put("shmid", static_cast<uint64_t>(t->segment().id()));
}

PHP_METHOD(ShmkitTable, destroy) {
  ZEND_PARSE_PARAMETERS_NONE();
  TableState& s = StateOf(ZEND_THIS);
  Table* t = Open(s);
  if (t == nullptr) RETURN_THROWS();
  if (s.key.has_value()) {
    absl::Status st = t->Remove();
    if (named_tables != nullptr) named_tables->erase(s.key->value());
    if (!st.ok() && !absl::IsNotFound(st)) {
      ThrowStatus(st);
      RETURN_THROWS();
    }
  }
  s.table.reset();
  s.page.clear();
  s.done = true;
  RETURN_TRUE;
}

PHP_METHOD(ShmkitTable, keyOf) {
  zend_string* name;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_STR(name)
  ZEND_PARSE_PARAMETERS_END();
  absl::StatusOr<IpcKey> key = KeyForName(View(name));
  if (!key.ok()) {
    ThrowStatus(key.status());
    RETURN_THROWS();
  }
  RETURN_LONG(static_cast<zend_long>(static_cast<uint32_t>(key->value())));
}

// Removes a named table without knowing its schema (clean-up scripts).
// False when there is none.
PHP_METHOD(ShmkitTable, remove) {
  zend_string* name;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_STR(name)
  ZEND_PARSE_PARAMETERS_END();
  absl::StatusOr<IpcKey> key = KeyForName(View(name));
  if (!key.ok()) {
    ThrowStatus(key.status());
    RETURN_THROWS();
  }
  if (named_tables != nullptr) named_tables->erase(key->value());
  TableAttachOptions attach;
  attach.expected_mode = std::nullopt;  // whatever mode it was created with
  absl::StatusOr<Table> t = Table::Attach(*key, attach);
  if (!t.ok()) {
    if (absl::IsNotFound(t.status())) RETURN_FALSE;
    ThrowStatus(t.status());
    RETURN_THROWS();
  }
  absl::Status st = t->Remove();
  if (!st.ok()) {
    ThrowStatus(st);
    RETURN_THROWS();
  }
  RETURN_TRUE;
}

// ---- Iterator ----------------------------------------------------------------

// Fetches pages until one has rows or the scan is over.
bool FetchPage(TableState& s) {
  s.page.clear();
  s.pos = 0;
  while (!s.done && s.page.empty()) {
    absl::StatusOr<ScanPage> p = s.table->Scan(s.cursor, kIterPageRows);
    if (!p.ok()) {
      s.done = true;
      ThrowStatus(p.status());
      return false;
    }
    s.page = std::move(p->rows);
    s.cursor = p->next_cursor;
    s.done = s.cursor == 0;
  }
  return true;
}

PHP_METHOD(ShmkitTable, rewind) {
  ZEND_PARSE_PARAMETERS_NONE();
  TableState& s = StateOf(ZEND_THIS);
  if (Open(s) == nullptr) RETURN_THROWS();
  s.cursor = 0;
  s.done = false;
  if (!FetchPage(s)) RETURN_THROWS();
}

PHP_METHOD(ShmkitTable, next) {
  ZEND_PARSE_PARAMETERS_NONE();
  TableState& s = StateOf(ZEND_THIS);
  if (Open(s) == nullptr) RETURN_THROWS();
  if (s.pos < s.page.size()) ++s.pos;
  if (s.pos >= s.page.size() && !FetchPage(s)) RETURN_THROWS();
}

PHP_METHOD(ShmkitTable, valid) {
  ZEND_PARSE_PARAMETERS_NONE();
  TableState& s = StateOf(ZEND_THIS);
  RETURN_BOOL(s.table != nullptr && s.pos < s.page.size());
}

PHP_METHOD(ShmkitTable, current) {
  ZEND_PARSE_PARAMETERS_NONE();
  TableState& s = StateOf(ZEND_THIS);
  if (s.table == nullptr || s.pos >= s.page.size()) RETURN_NULL();
  if (!RowToArray(s, s.page[s.pos], return_value)) {
    zval_ptr_dtor(return_value);
    ZVAL_UNDEF(return_value);
    RETURN_THROWS();
  }
}

PHP_METHOD(ShmkitTable, key) {
  ZEND_PARSE_PARAMETERS_NONE();
  TableState& s = StateOf(ZEND_THIS);
  if (s.table == nullptr || s.pos >= s.page.size()) RETURN_NULL();
  const absl::string_view k = s.page[s.pos].key();
  RETURN_STRINGL(k.data(), k.size());
}

// ---- arginfo -----------------------------------------------------------------

ZEND_BEGIN_ARG_INFO_EX(arginfo_construct, 0, 0, 1)
ZEND_ARG_TYPE_INFO(0, size, IS_LONG, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, conflict_proportion, IS_DOUBLE, 0, "0.2")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_column, 0, 2, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO(0, name, IS_STRING, 0)
ZEND_ARG_TYPE_INFO(0, type, IS_LONG, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, size, IS_LONG, 0, "0")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_create, 0, 0, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, options, IS_ARRAY, 0, "[]")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_open, 0, 1, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO(0, name, IS_STRING, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, options, IS_ARRAY, 0, "[]")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_set, 0, 2, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO(0, key, IS_STRING, 0)
ZEND_ARG_TYPE_INFO(0, row, IS_ARRAY, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, ttl, IS_DOUBLE, 1, "null")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_MASK_EX(arginfo_get, 0, 1,
                                        MAY_BE_ARRAY | MAY_BE_LONG |
                                            MAY_BE_DOUBLE | MAY_BE_STRING |
                                            MAY_BE_FALSE)
ZEND_ARG_TYPE_INFO(0, key, IS_STRING, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, column, IS_STRING, 1, "null")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_key_bool, 0, 1, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO(0, key, IS_STRING, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_MASK_EX(arginfo_getAndDelete, 0, 1,
                                        MAY_BE_ARRAY | MAY_BE_FALSE)
ZEND_ARG_TYPE_INFO(0, key, IS_STRING, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_MASK_EX(arginfo_incr, 0, 2,
                                        MAY_BE_LONG | MAY_BE_DOUBLE)
ZEND_ARG_TYPE_INFO(0, key, IS_STRING, 0)
ZEND_ARG_TYPE_INFO(0, column, IS_STRING, 0)
ZEND_ARG_TYPE_MASK(0, incrby, MAY_BE_LONG | MAY_BE_DOUBLE, "1")
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, ttl, IS_DOUBLE, 1, "null")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_cas, 0, 4, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO(0, key, IS_STRING, 0)
ZEND_ARG_TYPE_INFO(0, column, IS_STRING, 0)
ZEND_ARG_TYPE_MASK(0, expected, MAY_BE_LONG | MAY_BE_DOUBLE | MAY_BE_STRING,
                   NULL)
ZEND_ARG_TYPE_MASK(0, desired, MAY_BE_LONG | MAY_BE_DOUBLE | MAY_BE_STRING,
                   NULL)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_int, 0, 0, IS_LONG, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_bool, 0, 0, _IS_BOOL, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_array, 0, 0, IS_ARRAY, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_void, 0, 0, IS_VOID, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_mixed, 0, 0, IS_MIXED, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_keyOf, 0, 1, IS_LONG, 0)
ZEND_ARG_TYPE_INFO(0, name, IS_STRING, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_remove, 0, 1, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO(0, name, IS_STRING, 0)
ZEND_END_ARG_INFO()

constexpr uint32_t kPublic = ZEND_ACC_PUBLIC;
constexpr uint32_t kStatic = ZEND_ACC_PUBLIC | ZEND_ACC_STATIC;

const zend_function_entry table_methods[] = {
    PHP_ME(ShmkitTable, __construct, arginfo_construct, kPublic)
    PHP_ME(ShmkitTable, column, arginfo_column, kPublic)
    PHP_ME(ShmkitTable, create, arginfo_create, kPublic)
    PHP_ME(ShmkitTable, open, arginfo_open, kPublic)
    PHP_ME(ShmkitTable, set, arginfo_set, kPublic)
    PHP_ME(ShmkitTable, add, arginfo_set, kPublic)
    PHP_ME(ShmkitTable, update, arginfo_set, kPublic)
    PHP_ME(ShmkitTable, get, arginfo_get, kPublic)
    PHP_ME(ShmkitTable, exists, arginfo_key_bool, kPublic)
    PHP_MALIAS(ShmkitTable, exist, exists, arginfo_key_bool, kPublic)
    PHP_ME(ShmkitTable, del, arginfo_key_bool, kPublic)
    PHP_ME(ShmkitTable, getAndDelete, arginfo_getAndDelete, kPublic)
    PHP_ME(ShmkitTable, incr, arginfo_incr, kPublic)
    PHP_ME(ShmkitTable, decr, arginfo_incr, kPublic)
    PHP_ME(ShmkitTable, cas, arginfo_cas, kPublic)
    PHP_ME(ShmkitTable, count, arginfo_int, kPublic)
    PHP_ME(ShmkitTable, clear, arginfo_bool, kPublic)
    PHP_ME(ShmkitTable, sweep, arginfo_int, kPublic)
    PHP_ME(ShmkitTable, getMemorySize, arginfo_int, kPublic)
    PHP_ME(ShmkitTable, stats, arginfo_array, kPublic)
    PHP_ME(ShmkitTable, destroy, arginfo_bool, kPublic)
    PHP_ME(ShmkitTable, rewind, arginfo_void, kPublic)
    PHP_ME(ShmkitTable, next, arginfo_void, kPublic)
    PHP_ME(ShmkitTable, valid, arginfo_bool, kPublic)
    PHP_ME(ShmkitTable, current, arginfo_mixed, kPublic)
    PHP_ME(ShmkitTable, key, arginfo_mixed, kPublic)
    PHP_ME(ShmkitTable, keyOf, arginfo_keyOf, kStatic)
    PHP_ME(ShmkitTable, remove, arginfo_remove, kStatic)
    PHP_FE_END};

}  // namespace

void RegisterTable() {
  zend_class_entry ce;
  INIT_NS_CLASS_ENTRY(ce, "Shmkit", "Table", table_methods);
  table_ce = zend_register_internal_class(&ce);
  SetUpObjects<TableObject>(table_ce, &table_handlers);
  zend_class_implements(table_ce, 2, zend_ce_iterator, zend_ce_countable);
  zend_declare_class_constant_long(table_ce, "TYPE_INT", sizeof("TYPE_INT") - 1,
                                   kTypeInt);
  zend_declare_class_constant_long(table_ce, "TYPE_FLOAT",
                                   sizeof("TYPE_FLOAT") - 1, kTypeFloat);
  zend_declare_class_constant_long(table_ce, "TYPE_STRING",
                                   sizeof("TYPE_STRING") - 1, kTypeString);
}

void ReleaseNamedTables() {
  delete named_tables;
  named_tables = nullptr;
}

}  // namespace shmkit::php
