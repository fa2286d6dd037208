// Shared declarations of the PHP extension's parts (bindings/php/src).
//
// The extension is a thin skin over shmkit's public C++ API (DESIGN.md
// section 10): it converts arguments, maps absl::Status to PHP exceptions and
// adds nothing to the data model. PHP is built without thread safety on
// Debian (NTS), so process-wide state here needs no locks.
#ifndef SHMKIT_BINDINGS_PHP_SRC_SHMKIT_PHP_H_
#define SHMKIT_BINDINGS_PHP_SRC_SHMKIT_PHP_H_

#include <cstddef>
#include <optional>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "shmkit/ipc/key.h"

extern "C" {
#include "php.h"
#include "zend_exceptions.h"
#include "zend_interfaces.h"
#include "ext/spl/spl_exceptions.h"
}

namespace shmkit::php {

inline constexpr const char kVersion[] = "0.1.0";

// Shmkit\Exception (extends RuntimeException) and one subclass per
// absl::StatusCode the library returns; getCode() is the absl code number,
// getStatus() its name ("INVALID_ARGUMENT").
void RegisterErrors();
zend_class_entry* ExceptionClass(absl::StatusCode code);
// Throws the Shmkit\Exception subclass for `status` (which must not be OK).
void ThrowStatus(const absl::Status& status);

void RegisterTable();
void RegisterAtomic();
void RegisterQueue();
// Drops the per-process caches of named objects (module shutdown).
void ReleaseNamedTables();
void ReleaseNamedAtomics();

// The System V key a named object lives under. A name that IpcKey::Parse
// reads as a key (a number such as 0x5eed, or ftok:PATH:PROJ) is that key;
// any other name is hashed (FNV-1a 32-bit over "shmkit:" + name, a fixed
// hash, so every process derives the same key). InvalidArgument for an empty
// name or "private".
absl::StatusOr<IpcKey> KeyForName(absl::string_view name);

// Seconds from PHP (a float) as a Duration; InvalidArgument naming `what`
// when not finite. Negative stays negative (callers decide what it means).
absl::StatusOr<absl::Duration> SecondsToDuration(double seconds,
                                                 absl::string_view what);

inline absl::string_view View(const zend_string* s) {
  return absl::string_view(ZSTR_VAL(s), ZSTR_LEN(s));
}

// PHP objects of our classes are laid out as
//   struct Object { State* state; zend_object std; };
// with the C++ State made by `new` when PHP creates the object and deleted
// when PHP frees it.
template <typename Object>
Object* FromZendObject(zend_object* obj) {
  return reinterpret_cast<Object*>(reinterpret_cast<char*>(obj) -
                                   offsetof(Object, std));
}

template <typename Object>
typename std::remove_pointer_t<decltype(Object::state)>& StateOf(zval* self) {
  return *FromZendObject<Object>(Z_OBJ_P(self))->state;
}

// Registers class `ce` (already registered with PHP) to create Objects:
// sets create_object and fills `handlers` (free_obj, no clone), and makes
// the class unserializable (a mapping cannot be serialized).
template <typename Object>
void SetUpObjects(zend_class_entry* ce, zend_object_handlers* handlers) {
  using State = std::remove_pointer_t<decltype(Object::state)>;
  static zend_object_handlers* the_handlers = handlers;
  ce->create_object = [](zend_class_entry* c) -> zend_object* {
    auto* obj = static_cast<Object*>(zend_object_alloc(sizeof(Object), c));
    obj->state = new State();
    zend_object_std_init(&obj->std, c);
    object_properties_init(&obj->std, c);
    obj->std.handlers = the_handlers;
    return &obj->std;
  };
  ce->ce_flags |= ZEND_ACC_NOT_SERIALIZABLE;
  memcpy(handlers, zend_get_std_object_handlers(), sizeof(*handlers));
  handlers->offset = static_cast<int>(offsetof(Object, std));
  handlers->free_obj = [](zend_object* object) {
    Object* obj = FromZendObject<Object>(object);
    delete obj->state;
    obj->state = nullptr;
    zend_object_std_dtor(object);
  };
  handlers->clone_obj = nullptr;
}

}  // namespace shmkit::php

#endif  // SHMKIT_BINDINGS_PHP_SRC_SHMKIT_PHP_H_
